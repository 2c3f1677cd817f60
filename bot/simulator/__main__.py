from bot.simulator.server import main

main()

"""A local "WeChat": the WeCom and Official Account APIs plus the platform side of callbacks.

WeChat is unreachable from development machines, so tests, ``siyu-bot demo`` and developers run the
bot against this simulator. It follows the official protocol (summarised in docs/platform.md):
paths, field names, errcodes and time limits; each module's docstring cites the section it follows.

Start it::

    state = SimState(clock=FrozenClock(start), seed=1)      # or SimState() for real time
    sim = await start_simulator(state, "127.0.0.1", 9100)   # or make_sim_app(state) in tests
    # bot config: wecom.api_base_url = sim.wecom_api_base  (http://127.0.0.1:9100/wecom)
    #             official_account.api_base_url = sim.mp_api_base  (…/mp)

From a shell: ``python -m bot.simulator --port 9100``.

Script a journey (callbacks go to the bot's callback URLs, signed and encrypted like WeChat's)::

    accounts = state.accounts                               # or SimAccounts.from_settings(settings)
    wecom = CallbackPusher(session, wecom_target(accounts, "http://127.0.0.1:8080/callback/wecom"),
                           clock=state.clock)
    mp = CallbackPusher(session, mp_target(accounts, "http://127.0.0.1:8080/callback/mp"), clock=state.clock)
    sim = Simulator(state, wecom=wecom, mp=mp)
    added = await sim.add_friend("zhangsan", state="ch_douyin")
    await sim.follow(scene="ch_poster_01")

Read what the bot did::

    state.calls_to("externalcontact/send_welcome_msg")[0].body   # RecordedCall: at, query, body, response
    state.contacts[added.external_userid].welcomes              # what the customer received
    state.delivered                                             # app / OA / kf messages delivered

Break it (fault tests, :mod:`bot.simulator.faults`; nothing changes unless armed)::

    state.faults.lose_answer("message/send", mode="reset")      # acted, then the connection drops
    state.faults.fail_before("externalcontact/mark_tag", errcode=45009)   # refused, not acted
"""

from bot.simulator.app import SIM_STATE, make_sim_app
from bot.simulator.journeys import AddedFriend, CreatedGroup, NewFollower, Simulator, Withheld
from bot.simulator.pusher import CallbackPusher, CallbackTarget, Delivery, mp_target, wecom_target
from bot.simulator.server import RunningSimulator, start_simulator
from bot.simulator.state import RecordedCall, SimAccounts, SimState

__all__ = [
    "SIM_STATE",
    "AddedFriend",
    "CallbackPusher",
    "CallbackTarget",
    "CreatedGroup",
    "Delivery",
    "NewFollower",
    "RecordedCall",
    "RunningSimulator",
    "SimAccounts",
    "SimState",
    "Simulator",
    "Withheld",
    "make_sim_app",
    "mp_target",
    "start_simulator",
    "wecom_target",
]

"""siyu-bot: the application shell (config, transport, inbox, dispatcher, outbox, platform clients)."""

__version__ = "0.1.0"

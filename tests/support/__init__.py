"""What every folder of tests shares: :mod:`~tests.support.apps` (the one place an app is built),
:mod:`~tests.support.settings` (test settings and credentials), :mod:`~tests.support.wire` (callbacks
signed and encrypted as WeChat sends them) and :mod:`~tests.support.tcp_proxy` (a fault-injecting proxy).
Helpers of one feature live beside its tests (``tests/sop/drips.py``, ``tests/growth/helpers.py`` …)."""

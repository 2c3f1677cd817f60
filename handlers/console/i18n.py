"""The console's words: one catalogue per locale (``messages_zh``), looked up by key with :func:`t`.

A second locale is a second module with the same keys, added to :data:`CATALOGUES`; the templates call
``t("key")`` and never hold UI text of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from handlers.console.messages_zh import MESSAGES as ZH

LOCALE = "zh-CN"
CATALOGUES: Mapping[str, Mapping[str, str]] = {"zh-CN": ZH}


def t(key: str, locale: str = LOCALE, **values: object) -> str:
    """The text of ``key`` in ``locale`` (``{name}`` filled from ``values``); the key itself when missing."""
    text = CATALOGUES.get(locale, ZH).get(key) or ZH.get(key) or key
    return text.format(**values) if values else text

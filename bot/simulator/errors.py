"""What every simulated API shares: the error answer and the two platforms."""

from __future__ import annotations

from typing import Literal

Platform = Literal["wecom", "mp"]


class ApiError(Exception):
    """A non-zero errcode answer. The dispatcher turns it into ``{"errcode", "errmsg"}``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

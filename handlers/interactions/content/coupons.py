"""``[[coupon_pools]]`` in ``coupons.toml``: coupon codes imported from CSV, each issued at most once.

The CSV lives under the content directory (``path``), is UTF-8 (a BOM from Excel is fine) and has a
header row with a ``code`` column; other columns are ignored. Codes must be non-empty and unique across
every pool.
"""

from __future__ import annotations

import csv
import io

from bot.content.fields import ID, ID_HINT
from bot.content.node import Node
from bot.content.problems import Reporter
from bot.content.registry import Draft, Section
from handlers.interactions.content.model import CouponPool

MAX_CODE_CHARS = 128


def _csv_rows(node: Node, rel: str) -> list[dict[str, str]] | None:
    path = (node.root / rel).resolve()
    if not path.is_relative_to(node.root.resolve()):
        node.problem("path", f"{rel!r} is outside the content directory")
        return None
    if not path.is_file():
        node.problem("path", f"file {rel!r} not found (paths are relative to the content directory)")
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        node.problem("path", f"{rel!r} is not UTF-8 (byte {exc.start})")
        return None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or "code" not in [f.strip() for f in reader.fieldnames]:
        node.problem("path", f"{rel!r} needs a header row with a 'code' column")
        return None
    return [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]


def _codes(node: Node, rows: list[dict[str, str]], rel: str) -> tuple[str, ...] | None:
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        code = row.get("code", "").strip()
        if not code:
            node.problem("path", f"{rel!r} line {line}: empty code")
            return None
        if len(code) > MAX_CODE_CHARS:
            node.problem("path", f"{rel!r} line {line}: code longer than {MAX_CODE_CHARS} characters")
            return None
        if code in seen:
            node.problem("path", f"{rel!r} line {line}: code {code!r} repeats line {seen[code]}")
            return None
        seen[code] = line
    if not seen:
        node.problem("path", f"{rel!r} has no codes")
        return None
    return tuple(seen)


def parse_coupon_pool(node: Node) -> CouponPool | None:
    pool_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name", required=True, max_chars=60)
    rel = node.text("path", required=True)
    node.finish()
    rows = _csv_rows(node, rel) if rel is not None else None
    codes = _codes(node, rows, rel) if rows is not None and rel is not None else None
    if pool_id is None or name is None or rel is None or codes is None:
        return None
    return CouponPool(pool_id, name, rel, codes)


COUPON_POOLS: Section[CouponPool] = Section("coupon_pools", parse_coupon_pool, ident=("id", lambda p: p.id))


def check_pool_codes(draft: Draft, report: Reporter) -> None:
    """A code may be in one pool only: each code is issued once."""
    first: dict[str, str] = {}
    for located in draft.get(COUPON_POOLS):
        pool = located.value
        for code in pool.codes:
            other = first.setdefault(code, pool.id)
            if other != pool.id:
                reason = f"code {code!r} is also in pool {other!r}: each code is issued once"
                report.add(located.file, f"{located.key}.path", reason)
                break

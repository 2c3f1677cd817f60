"""Summarise py-spy ``--format raw`` stacks (from ``callbacks.py --profile DIR``) by stage of the path.

    .venv/bin/python bench/profile_summary.py DIR/*.txt

Each sample goes to the first stage whose marker appears anywhere in its stack (order matters).
SQLAlchemy runs awaited driver calls in greenlets, so some samples start at ``Connection.execute``
or ``Session.execute`` instead of the request handler; the markers catch those too.
"""

from __future__ import annotations

import collections
import re
import sys

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("event loop idle (epoll wait)", ("EpollSelector.select",)),
    ("aiosqlite worker thread (SQLite C + thread hop)", ("_connection_worker_thread",)),
    (
        "dispatcher: per-receipt ORM session + UPDATE",
        ("Dispatcher.", "Session.", "AsyncSession", "async_sessionmaker", "SessionTransaction"),
    ),
    (
        "writer: SQLAlchemy compile of the multi-row INSERT",
        ("_compile_w_cache", "ValuesBase.values", "DMLState", "values (<sqlalchemy"),
    ),
    (
        "writer: execute, bind params, result, commit (SQLAlchemy core + driver)",
        (
            "ReceiptWriter.",
            "Connection.execute",
            "Connection._execute",
            "AsyncConnection",
            "Result.",
            "DefaultExecutionContext",
            "construct_params",
            "AsyncTransaction",
            "Connection.commit",
            "Connection.begin",
            "asyncpg",
        ),
    ),
    ("signature check + AES decrypt", ("EnvelopeCrypto.", "PrpCrypto", "signature (")),
    ("XML parse (xmltodict)", ("parse_xml", "xmltodict")),
    ("typed event + dedup key", ("from_fields", "dedup_key", "event_parser")),
    ("metrics", ("Metrics.",)),
    (
        "aiohttp request/response",
        ("web_protocol", "web_response", "web_request", "web_app", "aiohttp", "query_params"),
    ),
    ("asyncio loop overhead", ("asyncio", "selectors.py")),
]


def stage_of(frames: list[str]) -> str:
    for name, markers in STAGES:
        if any(m in f for f in frames for m in markers):
            return name
    return "other"


def summarise(path: str, top: int = 12) -> str:
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            stages[stage_of(frames)] += n
            leaves[re.sub(r":\d+\)", ")", frames[-1])] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path}: {total} samples", "  by stage:"]
    out += [f"    {n / total:6.1%}  {name}" for name, n in stages.most_common()]
    out.append("  top leaf functions (self time):")
    out += [f"    {n / total:6.1%}  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for path in argv:
        print(summarise(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

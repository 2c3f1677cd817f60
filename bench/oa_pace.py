"""Fixed-rate load for ``bench/oa_replies.py`` (wrk2 is not available): one process, open loop.

    oa_pace.py --url http://127.0.0.1:P --file REQUESTS --rate 200 --seconds 10 --out result.json

Request ``i`` is due at ``start + i / rate`` and sent then whatever earlier requests are doing (no
coordinated omission): its latency is measured from when it was due, not from when it left. Every
answer is checked afterwards (signature, decryption, addressed to the sender) with the same code that
checks wrk's samples (:func:`check_reply`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from oa_serve import AES_KEY, APP_ID, TOKEN  # noqa: E402


def check_reply(body: str) -> tuple[dict[str, Any] | None, str]:
    """A passive reply as WeChat checks it: (the decrypted fields, "") or (None, why it would be refused)."""
    from bot.wechat import CallbackRejected, EnvelopeCrypto, parse_xml

    crypto = EnvelopeCrypto(TOKEN, AES_KEY, APP_ID, work=False)
    text = body.strip()
    if text in ("", "success"):
        return None, "no reply (success)"
    try:
        env = parse_xml(text)
        encrypt = str(env.get("Encrypt", ""))
        crypto.check(
            str(env.get("MsgSignature", "")), str(env.get("TimeStamp", "")), str(env.get("Nonce", "")), encrypt
        )
        fields: dict[str, Any] = parse_xml(crypto.decrypt(encrypt))
    except (CallbackRejected, ValueError, KeyError) as exc:
        return None, f"unreadable: {exc}"
    if fields.get("MsgType") not in ("text", "news"):
        return None, f"MsgType {fields.get('MsgType')!r}"
    return fields, ""


def summary_of_content(fields: dict[str, Any]) -> str:
    if fields.get("MsgType") == "news":
        return "news: " + str(fields.get("Articles", {}).get("item", {}).get("Title", ""))[:40]
    return str(fields.get("Content", "")).strip().splitlines()[0][:40]


def pct(values: list[float], q: float) -> float:
    import math

    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def pace(url: str, lines: list[str], rate: float, timeout: float) -> dict[str, Any]:
    import aiohttp

    results: list[tuple[float, int | None, str, str]] = []  # (latency s, status, body, openid)

    async def one(session: aiohttp.ClientSession, line: str, due: float) -> None:
        target, body, openid = line.rstrip("\n").split("\t")
        try:
            async with asyncio.timeout(timeout):
                async with session.post(url + target, data=body.encode(), headers={"Content-Type": "text/xml"}) as r:
                    text = await r.text()
                    results.append((time.perf_counter() - due, r.status, text, openid))
        except (TimeoutError, aiohttp.ClientError) as exc:
            results.append((time.perf_counter() - due, None, f"{type(exc).__name__}: {exc}", openid))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        start = time.perf_counter() + 0.2
        for i, line in enumerate(lines):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, line, due)))
        sent_for = time.perf_counter() - start
        await asyncio.gather(*tasks)
    latencies = [r[0] * 1000 for r in results if r[1] == 200]
    verified, refused, contents = 0, Counter[str](), Counter[str]()
    for _, status, body, openid in results:
        if status != 200:
            refused[f"HTTP {status}"] += 1
            continue
        fields, why = check_reply(body)
        if fields is None:
            refused[why[:60]] += 1
        elif fields.get("ToUserName") != openid:
            refused["addressed to someone else"] += 1
        else:
            verified += 1
            contents[summary_of_content(fields)] += 1
    return {
        "sent": len(lines),
        "rate": len(lines) / sent_for if sent_for > 0 else 0.0,
        "ok": len(latencies),
        "p50_ms": pct(latencies, 50),
        "p90_ms": pct(latencies, 90),
        "p99_ms": pct(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "verified": verified,
        "refused": dict(refused),
        "contents": dict(contents),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT (the path comes from the file)")
    p.add_argument("--file", required=True, help='lines "path?query<TAB>body<TAB>openid"')
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    lines = Path(args.file).read_text(encoding="utf-8").splitlines()[: int(args.rate * args.seconds)]
    result = asyncio.run(pace(args.url, lines, args.rate, args.timeout))
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

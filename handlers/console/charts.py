"""Charts drawn on the server as inline SVG: no script, no library, a few hundred bytes each.

Every label goes through :func:`markupsafe.escape`; each chart has a ``<title>`` and ``role="img"`` with
a text description for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 180, 28


def trend_line(points: Sequence[tuple[str, int]], description: str) -> Markup:
    """A line of daily values, the first and last day under it and the maximum beside it."""
    if not points:
        return Markup("")
    top = max(1, max(v for _, v in points))
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)

    def xy(i: int, value: int) -> str:
        return f"{PAD + i * step:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top:.1f}"

    line = " ".join(xy(i, v) for i, (_, v) in enumerate(points))
    first, last = escape(points[0][0]), escape(points[-1][0])
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(description)}">'
        f"<title>{escape(description)}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#8a8f98"/>'
        f'<polyline fill="none" stroke="#0b6bcb" stroke-width="2.5" points="{line}"/>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="12" fill="#333">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="12" fill="#333" text-anchor="end">{last}</text>'
        f'<text x="{PAD}" y="16" font-size="12" fill="#333">{top}</text>'
        "</svg>"
    )


def funnel(rows: Sequence[tuple[str, Sequence[int]]], steps: Sequence[str], description: str) -> Markup:
    """Per channel, one bar per step (adds → delivered → retained), scaled to the largest first step."""
    if not rows:
        return Markup("")
    colours = ("#0b6bcb", "#2e8540", "#8a5a00")
    top = max(1, max(values[0] for _, values in rows))
    bar, gap, label_w = 14, 4, 150
    block = len(steps) * (bar + gap) + 12
    height = 24 + block * len(rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(description)}">'
        f"<title>{escape(description)}</title>"
    ]
    for n, step in enumerate(steps):
        x = label_w + n * 140
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colours[n % 3]}"/>')
        parts.append(f'<text x="{x + 14}" y="13" font-size="12" fill="#333">{escape(step)}</text>')
    for r, (name, values) in enumerate(rows):
        y0 = 24 + r * block
        parts.append(f'<text x="0" y="{y0 + 14}" font-size="12" fill="#111">{escape(name[:14])}</text>')
        for n, value in enumerate(values):
            y = y0 + n * (bar + gap)
            w = (WIDTH - label_w - 60) * value / top
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colours[n % 3]}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" font-size="11" fill="#111">{value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

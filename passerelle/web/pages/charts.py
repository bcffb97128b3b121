"""Small server-side SVG charts (no JavaScript, no external library).

Each chart is an <svg role="img"> with a <title> summarising it; pages always show the same
numbers in a table next to it, so the chart is never the only way to read them.
All text is escaped; values are numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe & Ito 2008), darkened where needed for 3:1 against white.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#8C6D00",
    "#56B4E9",
    "#6B6B6B",
    "#E69F00",
    "#1B4F72",
)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}".replace(",", "\u202f")
    return f"{v:,.1f}".replace(",", "\u202f")


def hbar(
    items: Sequence[tuple[str, float | None]],
    title: str,
    unit: str = "",
    width: int = 560,
    bar: int = 18,
) -> Markup:
    """Horizontal bars, one per (label, value); None values are drawn as 'n/a'."""
    label_w, gap = 190, 6
    height = max(1, len(items)) * (bar + gap) + gap
    top = max([v for _, v in items if v is not None] or [0]) or 1
    span = width - label_w - 70
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar + gap)
        text = str(label)
        short = text if len(text) <= 28 else text[:27] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar * 0.75:.1f}" text-anchor="end">'
            f"{escape(short)}</text>"
        )
        if value is None:
            parts.append(f'<text x="{label_w}" y="{y + bar * 0.75:.1f}">n/a</text>')
            continue
        w = max(1.0, span * float(value) / top)
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour(0)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar * 0.75:.1f}">'
            f"{_num(float(value))}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(
    points: Sequence[tuple[str, float]],
    title: str,
    width: int = 560,
    height: int = 180,
) -> Markup:
    """Vertical columns over ordered labels (e.g. months), first and last labels written."""
    n = max(1, len(points))
    bottom, left = 24, 40
    top = max([v for _, v in points] or [0]) or 1
    step = (width - left - 10) / n
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" '
        'stroke="#444"/>'
        f'<text x="{left - 6}" y="14" text-anchor="end">{_num(top)}</text>'
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>'
    ]
    for i, (label, value) in enumerate(points):
        h = (height - bottom - 20) * float(value) / top
        x = left + i * step + step * 0.1
        parts.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{step * 0.8:.1f}" '
            f'height="{h:.1f}" fill="{colour(0)}"><title>{escape(label)}: {_num(value)}</title>'
            "</rect>"
        )
        if i in (0, len(points) - 1) or (len(points) <= 12):
            parts.append(
                f'<text x="{x + step * 0.4:.1f}" y="{height - 6}" text-anchor="middle" '
                f'class="small">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked(
    rows: Sequence[tuple[str, dict[str, float]]],
    parts_order: Sequence[tuple[str, str]],
    title: str,
    width: int = 640,
    bar: int = 22,
) -> Markup:
    """100 % stacked bars: one row per label, one segment per part (key, legend text); the
    legend is an HTML list under the chart."""
    label_w, gap = 190, 8
    height = max(1, len(rows)) * (bar + gap) + gap
    span = width - label_w - 10
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%">'
        f"<title>{escape(title)}</title>"
    ]
    for i, (label, shares) in enumerate(rows):
        y = gap + i * (bar + gap)
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar * 0.72:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        x = float(label_w)
        for j, (key, name) in enumerate(parts_order):
            share = float(shares.get(key, 0.0))
            if share <= 0:
                continue
            w = span * share
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour(j)}">'
                f"<title>{escape(label)} — {escape(name)}: {share * 100:.1f} %</title></rect>"
            )
            if w > 34:
                out.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + bar * 0.72:.1f}" text-anchor="middle" '
                    f'class="on-dark">{share * 100:.0f}%</text>'
                )
            x += w
    out.append("</svg>")
    out.append('<ul class="legend">')
    for j, (_key, name) in enumerate(parts_order):
        out.append(
            f'<li><svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
            f'fill="{colour(j)}"/></svg> {escape(name)}</li>'
        )
    out.append("</ul>")
    return Markup("".join(out))

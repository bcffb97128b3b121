"""The report as one offline HTML page: inline CSS and SVG charts drawn here, no script,
no network. Every value is escaped."""

from __future__ import annotations

from html import escape

from passerelle.ingest.quality.run import QualityReport

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d5dae3;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{padding:.25rem .5rem;
border-bottom:1px solid #e6e9ef;text-align:left;vertical-align:top}td.n{text-align:right;
font-variant-numeric:tabular-nums}.pass{color:#1b7f3b}.fail{color:#b3261e;font-weight:600}
.na{color:#7a8291}.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #d5dae3;
border-radius:8px;padding:.8rem 1rem;min-width:12rem}.card b{font-size:1.5rem;display:block}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
figure{margin:0;border:1px solid #e6e9ef;border-radius:6px;padding:.5rem}figcaption{font-weight:600}
svg text{font:11px system-ui,sans-serif;fill:#1d2330}
"""
GREEN, RED, GREY, BLUE = "#2e9d57", "#d0453a", "#b8bfcc", "#3a6fd0"


def _fmt(n: float | int | None) -> str:
    if n is None:
        return ""
    return f"{n:,.2f}" if isinstance(n, float) and not n.is_integer() else f"{int(n):,}"


def stacked_bar(parts: list[tuple[str, int, str]], width: int = 320) -> str:
    total = sum(v for _, v, _ in parts) or 1
    x, out = 0.0, []
    for label, v, color in parts:
        w = width * v / total
        if w:
            out.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="18" fill="{color}">'
                f"<title>{escape(label)}: {v:,}</title></rect>"
            )
        x += w
    return f'<svg width="{width}" height="18" role="img" aria-label="share">{"".join(out)}</svg>'


def bar_chart(points: list[tuple[int, int]], width: int = 320, height: int = 130) -> str:
    if not points:
        return "<p class=na>no dated rows</p>"
    top = max(c for _, c in points) or 1
    left, bottom = 36, 18
    plot_w, plot_h = width - left - 4, height - bottom - 6
    bw = plot_w / len(points)
    bars = []
    for i, (year, count) in enumerate(points):
        h = plot_h * count / top
        x = left + i * bw
        bars.append(
            f'<rect x="{x:.1f}" y="{6 + plot_h - h:.1f}" width="{max(bw - 1, 0.6):.1f}" '
            f'height="{h:.1f}" fill="{BLUE}"><title>{year}: {count:,}</title></rect>'
        )
    first, last = points[0][0], points[-1][0]
    axis = (
        f'<text x="{left}" y="{height - 4}">{first}</text>'
        f'<text x="{width - 4}" y="{height - 4}" text-anchor="end">{last}</text>'
        f'<text x="{left - 4}" y="14" text-anchor="end">{top:,}</text>'
        f'<line x1="{left}" y1="{6 + plot_h}" x2="{width - 4}" y2="{6 + plot_h}" stroke="#8a93a3"/>'
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="records per year">'
        f"{''.join(bars)}{axis}</svg>"
    )


def share_bar(share: float | None, width: int = 160) -> str:
    if share is None:
        return ""
    w = width * share
    return (
        f'<svg width="{width}" height="12" role="img" aria-label="{share:.0%}">'
        f'<rect width="{width}" height="12" fill="{GREY}"/>'
        f'<rect width="{w:.1f}" height="12" fill="{GREEN}"/></svg> {share:.1%}'
    )


def _status(s: str) -> str:
    cls = {"pass": "pass", "fail": "fail"}.get(s, "na")
    return f'<span class="{cls}">{escape(s)}</span>'


def render_html(report: QualityReport) -> str:
    s = report.summary()
    d = report.to_dict()
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>Passerelle data-quality report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Data-quality report</h1>",
        f"<p>Store <code>{escape(report.store)}</code> ({escape(report.engine)}); "
        f"vocabulary {'loaded' if report.vocabulary_loaded else 'not loaded'}.</p>",
        '<div class="cards">',
        f'<div class="card">checks<b>{s["checks"]:,}</b></div>',
        f'<div class="card">passed<b class="pass">{s["passed"]:,}</b></div>',
        f'<div class="card">failed<b class="fail">{s["failed"]:,}</b></div>',
        "</div><h2>By category</h2><table><tr><th>category</th><th>pass</th><th>fail</th>"
        "<th>not applicable</th><th></th></tr>",
    ]
    for cat, c in sorted(s["by_category"].items()):
        bar = stacked_bar([("pass", c["pass"], GREEN), ("fail", c["fail"], RED)])
        out.append(
            f"<tr><td>{escape(cat)}</td><td class=n>{c['pass']:,}</td><td class=n>{c['fail']:,}"
            f"</td><td class=n>{c['not applicable']:,}</td><td>{bar}</td></tr>"
        )
    out.append("</table>")
    out.append(_checks_table("Failed checks", [c for c in d["checks"] if c["status"] == "fail"]))
    out.append("<h2>Rows per table</h2><table><tr><th>table</th><th>rows</th></tr>")
    for t, n in sorted(report.rows.items()):
        if n:
            out.append(f"<tr><td>{escape(t)}</td><td class=n>{n:,}</td></tr>")
    out.append("</table><h2>Records per year</h2><div class=grid>")
    for t, pts in report.per_year.items():
        out.append(f"<figure><figcaption>{escape(t)}</figcaption>{bar_chart(pts)}</figure>")
    out.append(
        "</div><h2>Vocabulary mapping coverage</h2><table><tr><th>table</th><th>domain"
        "</th><th>source vocabulary</th><th>records</th><th>records mapped</th>"
        "<th>codes</th><th>codes mapped</th></tr>"
    )
    for c in report.coverage:
        out.append(
            f"<tr><td>{escape(c['table'])}</td><td>{escape(c['domain'])}</td>"
            f"<td>{escape(str(c['source_vocabulary']))}</td><td class=n>{c['records']:,}</td>"
            f"<td>{share_bar(c['record_share'])}</td><td class=n>{c['codes']:,}</td>"
            f"<td>{share_bar(c['code_share'])}</td></tr>"
        )
    out.append(
        "</table><h2>Completeness (NULL share per field)</h2><table><tr><th>table</th>"
        "<th>field</th><th>rows</th><th>NULL</th><th></th></tr>"
    )
    for c in report.completeness:
        if c["rows"]:
            share = 1 - (c["null"] / c["rows"])
            out.append(
                f"<tr><td>{escape(c['table'])}</td><td>{escape(c['field'])}</td>"
                f"<td class=n>{c['rows']:,}</td><td class=n>{c['null']:,}</td>"
                f"<td>{share_bar(share)}</td></tr>"
            )
    out.append("</table>")
    out.append("<details><summary>All checks</summary>")
    out.append(
        _checks_table("All checks", [c for c in d["checks"] if c["status"] != "not applicable"])
    )
    out.append("</details></body></html>")
    return "\n".join(out)


def _checks_table(title: str, checks: list[dict]) -> str:
    rows = [
        f"<h2>{escape(title)} ({len(checks):,})</h2><table><tr><th>check</th><th>category</th>"
        "<th>table</th><th>field</th><th>description</th><th>failing rows</th><th>%</th>"
        "<th>threshold %</th><th>status</th></tr>"
    ]
    for c in checks:
        detail = f" ({escape(c['detail'])})" if c.get("detail") else ""
        rows.append(
            f"<tr><td>{escape(c['check'])}</td><td>{escape(c['category'])}</td>"
            f"<td>{escape(c['table'])}</td><td>{escape(c['field'] or '')}</td>"
            f"<td>{escape(c['description'])}{detail}</td><td class=n>{c['failing']:,}</td>"
            f"<td class=n>{c['pct']:.2f}</td><td class=n>{_fmt(c['threshold_pct'])}</td>"
            f"<td>{_status(c['status'])}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)

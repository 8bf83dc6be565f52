"""The report's plots as inline SVG (pure): no script, no font or image fetched, every label escaped."""

from __future__ import annotations

from html import escape

PALETTE = {
    "allow": "#2e7d32", "redact": "#f9a825", "reroute": "#1565c0", "deny": "#c62828",
    "public": "#90caf9", "internal": "#42a5f5", "confidential": "#ef6c00", "restricted": "#b71c1c",
    "medium": "#f9a825", "high": "#ef6c00", "critical": "#b71c1c", "low": "#90caf9",
}
OTHER = ["#6d4c41", "#7b1fa2", "#00838f", "#546e7a", "#9e9d24", "#ad1457"]


def color(name: str, i: int = 0) -> str:
    return PALETTE.get(name, OTHER[i % len(OTHER)])


def _legend(categories: list[str], x: int, y: int) -> str:
    parts = []
    for i, c in enumerate(categories):
        parts.append(f'<rect x="{x + i * 120}" y="{y}" width="10" height="10" fill="{color(c, i)}"/>'
                     f'<text x="{x + i * 120 + 14}" y="{y + 9}" font-size="11">{escape(c[:16])}</text>')
    return "".join(parts)


def stacked_columns(per_day: dict[str, dict[str, int]], title: str, *, width: int = 720, height: int = 240) -> str:
    """Columns per step (hour or day), stacked by category (requests by decision, findings by severity)."""
    days = sorted(per_day)
    cats = sorted({c for v in per_day.values() for c in v})
    if not days:
        return _empty(title, width)
    top = max(sum(v.values()) for v in per_day.values()) or 1
    left, bottom, plot_h = 48, height - 40, height - 80
    step = (width - left - 10) / len(days)
    bar = max(min(step * 0.8, 40), 1)
    body = []
    for i, day in enumerate(days):
        y = float(bottom)
        for j, c in enumerate(cats):
            n = per_day[day].get(c, 0)
            h = n / top * plot_h
            if n:
                y -= h
                body.append(f'<rect x="{left + i * step:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                            f'fill="{color(c, j)}"><title>{escape(day)} {escape(c)}: {n}</title></rect>')
        if len(days) <= 14 or i % max(len(days) // 7, 1) == 0:
            body.append(f'<text x="{left + i * step:.1f}" y="{bottom + 14}" font-size="10">{escape(day[5:16])}</text>')
    axis = (f'<line x1="{left - 4}" y1="{bottom}" x2="{width - 8}" y2="{bottom}" stroke="#555"/>'
            f'<text x="4" y="{bottom - plot_h + 4:.0f}" font-size="10">{top:,}</text>'
            f'<text x="4" y="{bottom}" font-size="10">0</text>')
    return _frame(title, width, height, axis + "".join(body) + _legend(cats, left, height - 16))


def stacked_rows(table: dict[str, dict[str, int]], order: list[str], title: str, *, width: int = 720) -> str:
    """One horizontal bar per row, stacked by category (classification by vendor)."""
    rows = sorted(table, key=lambda r: -sum(table[r].values()))[:12]
    if not rows:
        return _empty(title, width)
    cats = [c for c in order if any(c in table[r] for r in rows)] + sorted(
        {c for r in rows for c in table[r]} - set(order))
    top = max(sum(table[r].values()) for r in rows) or 1
    left, row_h = 150, 22
    height = 50 + row_h * len(rows) + 24
    body = []
    for i, r in enumerate(rows):
        y, x = 30 + i * row_h, float(left)
        body.append(f'<text x="4" y="{y + 14}" font-size="11">{escape(r[:22])}</text>')
        for j, c in enumerate(cats):
            n = table[r].get(c, 0)
            w = n / top * (width - left - 60)
            if n:
                body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" fill="{color(c, j)}">'
                            f'<title>{escape(r)} {escape(c)}: {n}</title></rect>')
                x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y + 14}" font-size="10">{sum(table[r].values()):,}</text>')
    return _frame(title, width, height, "".join(body) + _legend(cats, left, height - 18))


def growth(per_day: dict[str, dict[str, int]], checkpoints: int, witnessed: int, title: str, *,
           width: int = 720, height: int = 220) -> str:
    """Records chained per step (hour or day), cumulative over the period, with the checkpoint and witness counts."""
    days = sorted(per_day)
    if not days:
        return _empty(title, width)
    totals, running = [], 0
    for d in days:
        running += sum(per_day[d].values())
        totals.append(running)
    left, bottom, plot_h = 60, height - 40, height - 80
    step = (width - left - 20) / max(len(days) - 1, 1)
    points = " ".join(f"{left + i * step:.1f},{bottom - t / (totals[-1] or 1) * plot_h:.1f}" for i, t in enumerate(totals))
    dots = "".join(f'<circle cx="{left + i * step:.1f}" cy="{bottom - t / (totals[-1] or 1) * plot_h:.1f}" r="3" '
                   f'fill="#1565c0"><title>{escape(d)}: {t:,} records</title></circle>' for i, (d, t) in enumerate(zip(days, totals)))
    labels = (f'<text x="4" y="{bottom - plot_h + 4:.0f}" font-size="10">{totals[-1]:,}</text>'
              f'<text x="{left}" y="{bottom + 14}" font-size="10">{escape(days[0])}</text>'
              f'<text x="{width - 90}" y="{bottom + 14}" font-size="10">{escape(days[-1])}</text>'
              f'<text x="{left}" y="{height - 8}" font-size="11">{checkpoints:,} signed checkpoint(s) in the export; '
              f'{witnessed:,} chain(s) cosigned by a witness</text>')
    line = f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="2"/>'
    return _frame(title, width, height, f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#555"/>'
                  + line + dots + labels)


def _frame(title: str, width: int, height: int, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
            f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>{body}</svg>')


def _empty(title: str, width: int) -> str:
    return _frame(title, width, 50, '<text x="4" y="38" font-size="12">nothing in the period</text>')

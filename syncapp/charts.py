"""A synchronization's last runs as one SVG picture, drawn on the server: no script, no library, no CDN.

Three panels share one column per run, oldest on the left: its duration, its objects per second, and the
objects it created, updated, deleted and failed (stacked); below them a square of the run's status and its
id. Each run is one link (`class="run-mark"`) to its page, with a tooltip that says its figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

WRITES = (("created", "#2e7d32"), ("updated", "#1565c0"), ("deleted", "#8d8d8d"), ("failed", "#c62828"))
STATUS_COLOURS = {
    "succeeded": "#2e7d32", "partial": "#ef8f00", "failed": "#c62828", "cancelled": "#8d8d8d",
    "running": "#1565c0", "queued": "#90a4ae",
}
WIDTH, LEFT, RIGHT = 760, 96, 12
PANEL_HEIGHT, PANEL_GAP, TOP = 64, 26, 20
NEUTRAL = "#5b7083"
# Below the panels: the status square and the run's id.
FOOT = 30


@dataclass(frozen=True)
class ChartRun:
    """What the chart shows of one run."""

    id: int
    url: str
    status: str
    started: str
    seconds: float | None
    rate: float | None
    created: int
    updated: int
    deleted: int
    failed: int


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}".removesuffix(".0")


def _tooltip(run: ChartRun) -> str:
    seconds = f"{_number(run.seconds)} s" if run.seconds is not None else "no duration"
    rate = f"{_number(run.rate)} objects/s" if run.rate is not None else "no rate"
    writes = ", ".join(f"{name} {getattr(run, name):,}" for name, _colour in WRITES)
    return f"run {run.id} {run.status}, {run.started}: {seconds}, {rate}; {writes}"


def runs_chart_svg(*, runs: list[ChartRun]) -> str:
    """Return the SVG of `runs` (oldest first); the caller marks it safe: every text in it is escaped."""
    panels = [
        ("Duration", " s", lambda run: run.seconds or 0.0, None),
        ("Objects/s", "/s", lambda run: run.rate or 0.0, None),
        ("Written", "", lambda run: float(sum(getattr(run, name) for name, _ in WRITES)), WRITES),
    ]
    bottom = TOP + len(panels) * (PANEL_HEIGHT + PANEL_GAP) + PANEL_GAP - 8
    height = bottom + FOOT
    slot = (WIDTH - LEFT - RIGHT) / max(len(runs), 12)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="The last {len(runs)} runs" '
        'style="font: 11px sans-serif; max-width: 100%">',
        "<style>.run-mark:hover .hit { fill: rgba(127, 127, 127, 0.15); }</style>",
    ]
    legend_x = LEFT
    for name, colour in WRITES:
        parts.append(f'<rect x="{legend_x}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="13" fill="currentColor">{name}</text>')
        legend_x += 70
    legend_x += 30
    for name in ("succeeded", "partial", "failed", "cancelled"):
        parts.append(f'<circle cx="{legend_x + 5}" cy="9" r="5" fill="{STATUS_COLOURS[name]}"/>'
                     f'<text x="{legend_x + 14}" y="13" fill="currentColor">{name}</text>')
        legend_x += 80
    parts.append(f'<text x="0" y="{bottom + 10}" fill="currentColor" opacity="0.7">status, run</text>')
    tops = []
    for index, (label, unit, value, _stack) in enumerate(panels):
        top = TOP + index * (PANEL_HEIGHT + PANEL_GAP) + PANEL_GAP - 8
        tops.append(top)
        highest = max((value(run) for run in runs), default=0.0)
        parts.append(
            f'<text x="0" y="{top + 12}" fill="currentColor" font-weight="bold">{escape(label)}</text>'
            f'<text x="0" y="{top + 26}" fill="currentColor" opacity="0.7">max {_number(highest)}{unit}</text>'
            f'<line x1="{LEFT}" y1="{top + PANEL_HEIGHT}" x2="{WIDTH - RIGHT}" y2="{top + PANEL_HEIGHT}" '
            'stroke="currentColor" stroke-opacity="0.3"/>'
        )
    for position, run in enumerate(runs):
        x = LEFT + position * slot + (slot - bar) / 2
        # A column as tall as the chart takes the pointer: a run is pointed at and clicked anywhere above it.
        marks = [f"<title>{escape(_tooltip(run))}</title>",
                 f'<rect class="hit" x="{LEFT + position * slot:.1f}" y="{TOP}" width="{slot:.1f}" '
                 f'height="{height - TOP}" fill="transparent"/>']
        for (_label, _unit, value, stack), top in zip(panels, tops, strict=True):
            highest = max(value(other) for other in runs) or 1.0
            base = top + PANEL_HEIGHT
            pieces = stack or [(None, NEUTRAL)]
            for name, colour in pieces:
                amount = float(getattr(run, name)) if name else value(run)
                size = PANEL_HEIGHT * amount / highest
                if size <= 0:
                    continue
                base -= size
                marks.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{size:.1f}" '
                             f'fill="{colour}"/>')
        middle = LEFT + position * slot + slot / 2
        marks.append(f'<circle cx="{middle:.1f}" cy="{bottom + 6}" r="{min(5.0, slot / 3):.1f}" '
                     f'fill="{STATUS_COLOURS.get(run.status, NEUTRAL)}"/>')
        if slot >= 18:  # room for the id under its column
            marks.append(f'<text x="{middle:.1f}" y="{bottom + 24}" text-anchor="middle" fill="currentColor" '
                         f'font-size="10">{run.id}</text>')
        parts.append(f'<a class="run-mark" href="{escape(run.url)}" data-run="{run.id}">{"".join(marks)}</a>')
    parts.append("</svg>")
    return "".join(parts)

"""What the accuracy-vs-latency plot may recommend, and how it stays readable.

The Pareto front runs only through rows a user may ship: the original and artifacts that passed
their gates (the table's ✅). Artifacts that failed (❎), could not be verified (➖) and the
ungated peer path are drawn but never join the front. Latency ticks are readable numbers on the
log axis, and labels are placed greedily so that none overlaps another label or a point.
"""

from __future__ import annotations

GATE_PASSED = ("pass", None)  # bench.STATUS maps None (no gate recorded) to ✅ as well


def eligible(row: dict) -> bool:
    """May this row be on the front? The original, or an artifact whose gate passed."""
    if row.get("role") == "original":
        return True
    return row.get("role", "artifact") == "artifact" and row.get("verify") in GATE_PASSED


def front_members(rows: list[dict], points: list[tuple[float, float]], pareto_front) -> list[int]:
    """Indices into ``rows`` of the Pareto front among eligible rows only (see ``eligible``);
    ``pareto_front(points) -> indices`` is ``edgederm.report.pareto_front`` (passed in: no import cycle)."""
    ok = [i for i, r in enumerate(rows) if eligible(r)]
    return [ok[j] for j in pareto_front([points[i] for i in ok])]


def latency_ticks(ax, lo: float, hi: float) -> list[float]:
    """Readable major ticks on a log latency axis spanning [lo, hi] ms: four or more labelled values
    where the span allows (1-2-5 per decade, finer where it is narrow), plain numbers, no 10^x."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo, hi = max(lo, 1e-6), max(hi, lo * 1.0001)
    ticks: list[float] = []
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [s * 10 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for s in subs if lo <= s * 10 ** e <= hi]
        if len(ticks) >= 4:
            break
    if len(ticks) < 2:  # a very narrow span: the ends themselves
        ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    return ticks


# candidate offsets (points) around a marker, nearest first: (dx, dy, horizontal alignment)
OFFSETS = sorted(((dx, dy, ha) for dy in (5, -11, 15, -21, 25, -31, 35, -41, 45, -51, 55, -61, 65, -71)
                  for dx, ha in ((6, "left"), (-6, "right"), (0, "center"))),
                 key=lambda o: (abs(o[1] + 3), o[0] == 0))


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(ax, points: list[tuple[float, float]], texts: list[str], order: list[int] | None = None,
                 fontsize: float = 7) -> list:
    """Annotate each point with its text at the first offset whose box overlaps no label placed so
    far, no other point's marker and stays inside the axes (else the least-overlapping offset).
    ``order`` says who chooses first (e.g. the front). Returns the label boxes (display units)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = [ax.transData.transform(p) for p in points]
    pad = 4.0 * fig.dpi / 72  # a marker's half width, in pixels
    markers = [Bbox.from_extents(x - pad, y - pad, x + pad, y + pad) for x, y in centres]
    legend = ax.get_legend()
    placed: list = []
    obstacles = [legend.get_window_extent(renderer)] if legend is not None else []
    for i in order if order is not None else range(len(points)):
        best = None
        for dx, dy, ha in OFFSETS:
            ann = ax.annotate(texts[i], points[i], textcoords="offset points", xytext=(dx, dy), ha=ha,
                              fontsize=fontsize, arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            cost = sum(_overlap(box, b) for b in placed + obstacles) + sum(_overlap(box, m) for j, m in enumerate(markers) if j != i)
            outside = box.width * box.height - _overlap(box, frame)
            cost += outside
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        placed.append(best[2])
    return placed


def gate_note(row: dict) -> str:
    """What the plot appends to a label that may not join the front."""
    if eligible(row):
        return ""
    if row.get("role") == "peer":
        return " (peer, not gated)"
    return " ✗ failed gate" if row.get("verify") == "fail" else " (not verified)"


def draw_panel(ax, panel: list[dict], key: str, pareto_front) -> dict:
    """Points with CIs (hollow grey where the row may not be recommended), the front through eligible
    rows only, readable log ticks. Returns {"points", "front", "order"} for ``place_labels``."""
    markers = {"original": "s", "artifact": "o", "peer": "^"}
    points = [(r["latency"]["median_ms"], r["metrics"][key]["value"]) for r in panel]
    front = front_members(panel, points, pareto_front)
    for i, r in enumerate(panel):
        m = r["metrics"][key]
        yerr = [[m["value"] - m["low"]], [m["high"] - m["value"]]] if m.get("low") is not None else None
        ok = eligible(r)
        color = "tab:red" if i in front else "tab:blue" if ok else "0.45"
        ax.errorbar(*points[i], yerr=yerr, fmt=markers.get(r.get("role"), "o"), capsize=3, alpha=0.85, color=color,
                    markerfacecolor=color if ok else "none", markeredgewidth=1.2)
    if front:
        f = sorted(points[i] for i in front)
        ax.plot([p[0] for p in f], [p[1] for p in f], "--", color="tab:red", lw=1,
                label="Pareto front (original + artifacts that passed their gates)")
    ax.plot([], [], "o", color="0.45", markerfacecolor="none", label="hollow: failed / unverified gate, or peer")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xscale("log")
    ms = [p[0] for p in points]
    if ms:
        lo, hi = min(ms) / 1.15, max(ms) * 1.15
        ax.set_xlim(lo, hi)
        latency_ticks(ax, lo, hi)
    order = front + [i for i in sorted(range(len(panel)), key=lambda i: points[i]) if i not in front]
    return {"points": points, "front": front, "order": order}

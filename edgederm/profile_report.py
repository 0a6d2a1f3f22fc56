"""``edgederm profile`` output: terminal tables, a stacked bar per artifact by operator type, Markdown."""

from __future__ import annotations

import os
from pathlib import Path


def _f(v, fmt: str, none: str = "-") -> str:
    return format(v, fmt) if v is not None else none


def headline(e: dict) -> str:
    """One line per artifact: the profile's total against the measured latency, and the coverage."""
    if e["status"] == "skipped":
        return f"{e['artifact']}: skipped ({e['reason']})"
    total = (f"profile {e['profile_ms']:.2f} ms = {100 * e['explained']:.0f}% of the measured {e['measured_ms']:.2f} ms"
             if e.get("explained") else f"measured {_f(e.get('measured_ms'), '.2f')} ms; {e['timing']}")
    peak = f"; {100 * e['peak_fraction']:.1f}% of the measured {'int8' if e['precision'].startswith(('int8', 'w8a8')) else 'fp32'} peak" \
        if e.get("peak_fraction") else ""
    return f"{e['artifact']} ({e['runtime']}, {e.get('provider') or '-'}, {e['threads']} thread(s)): {total}{peak}"


def coverage_text(e: dict) -> str:
    c = e.get("coverage") or {}
    if "delegated_nodes" in c:  # LiteRT
        fall = ", ".join(f"{k}×{v}" for k, v in sorted(c["fallback_ops"].items())) or "none"
        return (f"coverage: {c['delegated_nodes']}/{c['source_nodes']} nodes in XNNPACK, {c['partitions']} partition(s); "
                f"fallback: {fall}; Q {c['quantize']} / DQ {c['dequantize']}; transposes {c['transposes']}; "
                f"int8 nodes {c['int8_nodes']}, float {c['float_nodes']}")
    if "executed_nodes" in c:  # ONNX Runtime
        prov = ", ".join(f"{k} {v}" for k, v in c["providers"].items())
        return (f"coverage: {c['executed_nodes']} executed nodes (source {c['source_nodes']}) on {prov}, "
                f"{c['partitions']} partition(s); int8 kernels {c['int8_nodes']}, float {c['float_nodes']}; "
                f"Q {c['quantize']} / DQ {c['dequantize']} left after fusion (source Q/DQ pairs {c['source_qdq_pairs']}); "
                f"layout nodes {c['layout_nodes']} (source transposes {c['source_transposes']})")
    if "aten_ops" in c:
        return f"coverage: {c['aten_ops']} aten calls per inference, {c['layout_ops']} of them layout copies/permutes"
    return ""


def table(e: dict, top: int = 12) -> list[dict]:
    rows = []
    for r in e.get("ops", [])[:top]:
        rows.append({"op type": r["op"], "nodes": r["nodes"], "ms": _f(r["ms"], ".3f"),
                     "share %": _f(None if r["share"] is None else 100 * r["share"], ".1f"),
                     "MMACs": _f(None if not r["macs"] else r["macs"] / 1e6, ".1f"),
                     "MB moved": _f(None if r["bytes"] is None else r["bytes"] / 1e6, ".2f"),
                     "GMAC/s": _f(r["gmacs_per_s"], ".1f"),
                     "% roof": _f(None if r["roof_fraction"] is None else 100 * r["roof_fraction"], ".0f"),
                     "kind": r["kind"], "runs on": ",".join(r["providers"])[:24]})
    rest = e.get("ops", [])[top:]
    if rest:
        ms = sum(r["ms"] or 0 for r in rest)
        rows.append({"op type": f"({len(rest)} more types)", "nodes": sum(r["nodes"] for r in rest),
                     "ms": _f(ms if any(r["ms"] is not None for r in rest) else None, ".3f")})
    return rows


def roofline_text(p: dict) -> str:
    r = p.get("roofline")
    if not r:
        return "roofline: not measured (--no-roofline)"
    return (f"roofline at {p['threads']} thread(s), measured in this run: fp32 {r['fp32_gmacs']} GMAC/s, "
            f"int8 {r['int8_gmacs']} GMAC/s, memory {r['bandwidth_gbs']} GB/s")


def plot(p: dict, path, top: int = 8) -> Path | None:
    """A horizontal stacked bar per timed artifact: ms by operator type (the ``top`` largest overall, the rest as other)."""
    timed = [e for e in p["artifacts"] if e.get("profile_ms")]
    if not timed:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals: dict[str, float] = {}
    for e in timed:
        for r in e["ops"]:
            totals[r["op"]] = totals.get(r["op"], 0.0) + (r["ms"] or 0.0)
    keep = sorted(totals, key=totals.get, reverse=True)[:top]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(timed)), dpi=110)
    colors = plt.get_cmap("tab10")
    for y, e in enumerate(timed):
        left = 0.0
        by_op = {r["op"]: r["ms"] or 0.0 for r in e["ops"]}
        for k, op in enumerate(keep + ["other"]):
            ms = by_op.get(op, 0.0) if op != "other" else sum(v for o, v in by_op.items() if o not in keep)
            ax.barh(y, ms, left=left, color=colors(k % 10) if op != "other" else "0.75",
                    label=op if y == 0 else None, edgecolor="white", lw=0.5)
            left += ms
        ax.plot([e["measured_ms"]] * 2, [y - 0.4, y + 0.4], color="black", lw=1.5,
                label="measured latency (bench protocol)" if y == 0 else None)
    ax.set_yticks(range(len(timed)), [e["artifact"] for e in timed], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms per inference at {p['threads']} thread(s), by operator type (runtime profilers)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"{p['model'].get('name')}: where the milliseconds go", fontsize=10)
    fig.tight_layout()
    from edgederm.paths import atomic_path

    path = Path(path)
    tmp = atomic_path(path)  # write a sibling, then rename
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def markdown(p: dict, top: int = 12) -> str:
    from edgederm.report import markdown_table

    isa = (p["environment"].get("cpu_isa") or {}).get("label", "?")
    out = [f"# Profile: {p['model'].get('name')}\n",
           f"{p['device']} ({p['environment'].get('cpu_model')}, ISA {isa}), {p['date']}, {p['threads']} thread(s), "
           f"{p['runs']} profiled runs.\n", roofline_text(p) + "\n"]
    for e in p["artifacts"]:
        out += [f"\n## {e['artifact']}\n", headline(e) + "\n"]
        if e["status"] != "skipped":
            out += [coverage_text(e) + "\n", markdown_table(table(e, top))]
    return "\n".join(out)

"""All presentation of results: the export/verify rows and the bench table in the terminal (status
legend as users know it from Ultralytics), and the Markdown + self-contained HTML report with its
Pareto and size plots. It imports no stage: it reads manifests, outcomes and results."""

from __future__ import annotations

from edgederm.table import STATUS
from edgederm.tasks import TASKS, task_of

LEGEND = "✅ verified  ❎ exported, verification failed  ➖ exported, not verifiable here  ❌ export failed"


def export_rows(outcome) -> list[dict]:
    manifest = outcome.manifest
    classify = task_of(manifest.task).has_class_labels
    by_name = {r.artifact: r for r in outcome.verify}
    rows = []
    for a in manifest.artifacts:
        r = by_name.get(a.name)
        f = r.figures if r else {}
        row = {"artifact": a.name, "format": a.format, "precision": a.precision,
               "size MB": f"{a.size_bytes / 1e6:.2f}", "status": STATUS.get(r.status, "?") if r else "-"}
        if classify:
            row["max |Δp|"] = f"{f['max_abs_prob']:.2e}" if "max_abs_prob" in f else "-"
            row["top-1 agree"] = f"{f['top1_agreement']:.4f}" if "top1_agreement" in f else "-"
            row["bal-acc"] = f"{f['balanced_accuracy_artifact']:.4f}" if "balanced_accuracy_artifact" in f else "-"
        else:
            row["mask Dice vs orig"] = f"{f['mask_dice_mean']:.4f}" if "mask_dice_mean" in f else "-"
            row["Dice vs truth"] = f"{f['dice_artifact']:.4f}" if "dice_artifact" in f else "-"
        row["note"] = (r.reason if r and r.status != "pass" else "")[:70]
        rows.append(row)
    for fail in outcome.failures:
        rows.append({"artifact": f"{fail['format']}_{fail['precision']}", "format": fail["format"],
                     "precision": fail["precision"], "size MB": "-", "status": STATUS["export_failed"],
                     "note": fail["error"][:70]})
    return rows


# --- the bench report (edgederm report) ----------------------------------------------------
HEADLINE = {name: (spec.headline, spec.headline_name) for name, spec in TASKS.items()}


def measured(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["status"] == "ok" and r.get("latency") and r.get("metrics")]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by another (lower latency and higher-or-equal metric, or vice versa)."""
    front = []
    for i, (ms, m) in enumerate(points):
        dominated = any((ms2 <= ms and m2 >= m) and (ms2 < ms or m2 > m) for j, (ms2, m2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def label(r: dict, with_device: bool) -> str:
    device = r.get("device", "")
    return r["artifact"] + (f" · {device[:24]}" if with_device and device else "")


def plot_pareto(results, path) -> list[str]:
    """Accuracy vs latency (log x), one panel per thread count, one point per measured row with its
    95 % CI and the Pareto front; returns the labels drawn (the report test checks every row is there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgederm.pareto import draw_panel, gate_note, place_labels

    key, name = HEADLINE[results.model.get("task", "classification")]
    rows = measured(results.rows)
    threads = sorted({r.get("threads") for r in rows}) or [None]
    with_device = len({r.get("device") for r in rows}) > 1
    fig, axes = plt.subplots(1, len(threads), figsize=(7.5 * len(threads), 5.5), dpi=110, squeeze=False)
    labels, panels = [], []
    for ax, t in zip(axes[0], threads):
        panel = [r for r in rows if r.get("threads") == t]
        drawn = draw_panel(ax, panel, key, pareto_front)  # the front through gate-passed rows only
        texts = [label(r, with_device) for r in panel]
        labels += texts
        panels.append((ax, drawn, [x + gate_note(r) for x, r in zip(texts, panel)]))
        ax.set_xlabel("median latency per image, ms (batch 1, log scale)")
        ax.set_ylabel(f"{name} (95% bootstrap CI)")
        ax.set_title(f"{t} thread(s)  (■ original  ● artifact  ▲ peer path)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{results.model.get('name')}: {name} vs latency")
    fig.tight_layout()
    for ax, drawn, texts in panels:  # after the layout: placement works in final display units
        place_labels(ax, drawn["points"], texts, drawn["order"])
    fig.savefig(path)
    plt.close(fig)
    return labels


def plot_size(results, path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, name = HEADLINE[results.model.get("task", "classification")]
    seen, labels = set(), []
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for r in measured(results.rows):
        if not r.get("size_bytes") or r["artifact"] in seen:
            continue
        seen.add(r["artifact"])
        m = r["metrics"][key]
        ax.scatter(r["size_bytes"] / 1e6, m["value"], color="tab:green")
        ax.annotate(r["artifact"], (r["size_bytes"] / 1e6, m["value"]), textcoords="offset points", xytext=(5, 3), fontsize=7)
        labels.append(r["artifact"])
    ax.set_xlabel("file size, MB")
    ax.set_ylabel(name)
    ax.set_title(f"{results.model.get('name')}: {name} vs size")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return labels


def device_columns(results) -> tuple[list[str], list[dict]]:
    """One row per (artifact, threads), one latency column per device: how ``results merge`` shows devices."""
    devices = list(dict.fromkeys(r.get("device", "?") for r in results.rows))
    # grouped by instruction set (int8 conclusions depend on it), each header names its ISA
    devices.sort(key=lambda d: isa_label(results.environments.get(d, {})))
    short = {d: d[:32] + (f" [{isa_label(results.environments.get(d, {}))}]"
                          if isa_label(results.environments.get(d, {})) else "") for d in devices}
    table: dict[tuple, dict] = {}
    key, _ = HEADLINE[results.model.get("task", "classification")]
    for r in results.rows:
        k = (r["artifact"], r.get("threads"))
        row = table.setdefault(k, {"artifact": r["artifact"], "precision": r["precision"], "threads": r.get("threads", "-")})
        if r["status"] == "ok" and r.get("latency"):
            row[f"ms · {short[r.get('device', '?')]}"] = f"{r['latency']['median_ms']:.2f}"
            if r.get("metrics"):
                row.setdefault(key, f"{r['metrics'][key]['value']:.4f}")
        else:
            row.setdefault(f"ms · {short[r.get('device', '?')]}", r["status"])
    return devices, list(table.values())


def isa_label(facts: dict) -> str:
    """The environment's ISA label (``device_bench.isa``), e.g. ``AVX2`` or ``NEON+dotprod``; "" if unrecorded."""
    return (facts.get("cpu_isa") or {}).get("label") or ""


def isa_text(facts: dict) -> str:
    isa = facts.get("cpu_isa") or {}
    if not isa.get("label"):
        return "not recorded"
    dot = "int8 dot products" if isa.get("int8_dot") else "no int8 dot product (int8 may not beat fp32)"
    return f"{isa['label']}; {dot}"


def noise_text(data: dict) -> str:
    """The machine's own drift while timing (``data.machine_noise``: a fixed GEMM timed in the same
    interleaved rounds as the candidates), as one sentence; empty when the file has none."""
    noise = data.get("machine_noise") or {}
    if not noise:
        return ""
    spreads = ", ".join(f"{100 * (p.get('round_spread') or 0):.0f}% at {t} thread(s)" for t, p in sorted(noise.items()))
    return (f"Machine noise while timing: a fixed GEMM varied {spreads} between rounds; "
            "single-run latency differences smaller than that deserve a second run.")


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no rows_\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def render(results, out_dir) -> dict:
    """Write report.md, report.html (self-contained: plots inlined) and the two PNGs; returns their paths."""
    import base64
    import html
    import json
    import os
    from pathlib import Path

    from edgederm.paths import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pareto, size = out_dir / "pareto.png", out_dir / "size.png"
    plotted = plot_pareto(results, pareto)
    plot_size(results, size)
    title = f"EdgeDerm benchmark: {results.model.get('name')} ({results.model.get('task')})"
    intro = (f"{results.data.get('images')} {results.data.get('split', 'test')} images of "
             f"{results.data.get('dataset')} ({results.data.get('selection', '')}); batch 1; "
             "Δ = artifact − original on the same images, paired bootstrap 95% CI, in points.")
    if noise_text(results.data):
        intro += " " + noise_text(results.data)
    threads = sorted({r.get("threads") for r in results.rows if r.get("threads")})
    md = [f"# {title}\n", intro + "\n", LEGEND_BENCH + "\n"]
    html_parts = [f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p><p>{html.escape(LEGEND_BENCH)}</p>",
                  f'<img alt="accuracy vs latency" src="data:image/png;base64,{base64.b64encode(pareto.read_bytes()).decode()}">',
                  f'<img alt="accuracy vs size" src="data:image/png;base64,{base64.b64encode(size.read_bytes()).decode()}">']
    for t in threads:
        rows = table_rows(results, t)
        md += [f"\n## {t} thread(s)\n", markdown_table(rows)]
        html_parts.append(f"<h2>{t} thread(s)</h2>" + html_table(rows))
    devices, per_device = device_columns(results)
    if len(devices) > 1:
        md += ["\n## Devices (median ms per image)\n", markdown_table(per_device)]
        html_parts.append("<h2>Devices (median ms per image)</h2>" + html_table(per_device))
    md += ["\n![accuracy vs latency](pareto.png)\n", "![accuracy vs size](size.png)\n", "\n## Environment\n"]
    env_rows = [{"device": k, "ISA": isa_text(e), **{f: (json.dumps(v) if isinstance(v, dict) else v) for f, v in e.items()
                                 if f in ("cpu_model", "cpu_count", "memory_mb", "os", "python", "gpu", "peak_gmacs", "runtimes", "board_model", "cpu_clocks")}}
                for k, e in sorted(results.environments.items(), key=lambda kv: isa_label(kv[1]))]
    md.append(markdown_table(env_rows))
    html_parts.append("<h2>Environment</h2>" + html_table(env_rows))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
            "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
            "th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}</style></head><body>"
            + "".join(html_parts) + "</body></html>\n")
    written = {}
    for name, text in (("report.md", "\n".join(md)), ("report.html", page)):
        target = out_dir / name
        tmp = atomic_path(target)
        tmp.write_text(text)
        os.replace(tmp, target)
        written[name] = target
    written.update({"pareto.png": pareto, "size.png": size, "plotted": plotted})
    return written


def html_table(rows: list[dict]) -> str:
    import html

    if not rows:
        return "<p><em>no rows</em></p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


LEGEND_BENCH = ("✅ verified  ❎ exported, verification failed  ➖ not runnable on this machine  ❌ failed  "
                "peer: the plain-ONNX path a user would take without EdgeDerm (not gated)")


# --- the bench table (terminal and report) ------------------------------------------------
def decision_columns(metrics: dict) -> dict:
    """ECE and each manifest operating point's sensitivity/specificity, for the table and the report."""
    def fmt(e):
        return f"{e['value']:.3f}" if e and e.get("value") is not None else "-"
    cols = {"ECE": fmt(metrics.get("ece"))}
    for k in sorted(metrics):
        if k.endswith("_sensitivity") and f"{k[:-len('_sensitivity')]}_specificity" in metrics:
            name = k[:-len("_sensitivity")]
            cols[f"{name} sens/spec"] = f"{fmt(metrics[k])}/{fmt(metrics[f'{name}_specificity'])}"
    return cols


def table_rows(results, threads: int | None = None) -> list[dict]:
    task = results.model.get("task", "classification")
    key = task_of(task).headline
    rows = []
    with_gpu = any(r.get("gpu_original_ratio") for r in results.rows)
    for r in results.rows:
        if threads is not None and r.get("threads") not in (threads, None):
            continue
        status = ("❌" if r["status"] == "failed" else "➖" if r["status"] == "skipped"
                  else "peer" if r.get("role") == "peer" else STATUS.get(r.get("verify") or "pass", "✅"))
        row = {"artifact": r["artifact"], "format": r["format"], "precision": r["precision"], "status": status,
               "size MB": f"{r['size_bytes'] / 1e6:.2f}" if r.get("size_bytes") else "-"}
        m, d, lat = r.get("metrics", {}).get(key), r.get("delta", {}).get(key), r.get("latency")
        row[key.replace("_", "-")] = f"{m['value']:.4f} ±{(m['high'] - m['low']) / 2:.3f}" if m and m.get("low") is not None else "-"
        row["Δ pt [95% CI]"] = (f"{100 * d['value']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
                                if d and d.get("low") is not None else "-")
        if task_of(task).has_class_labels:
            row.update(decision_columns(r.get("metrics", {})))
        row["threads"] = r.get("threads", "-")
        row["ms median"] = f"{lat['median_ms']:.2f}" if lat else "-"
        row["ms p90"] = f"{lat['p90_ms']:.2f}" if lat else "-"
        row["speed-up"] = f"{r['speedup_vs_original']:.2f}×" if r.get("speedup_vs_original") else "-"
        row["% peak"] = f"{100 * r['peak_fraction']:.1f}" if r.get("peak_fraction") else "-"
        if with_gpu:  # ms / the original's eager fp32 ms on the GPU
            row["× GPU ms"] = f"{r['gpu_original_ratio']:.2f}" if r.get("gpu_original_ratio") else "-"
        row["note"] = (r.get("reason") or "")[:60]
        rows.append(row)
    return rows

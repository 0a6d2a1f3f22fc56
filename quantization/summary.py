"""The ``edgederm quantize`` table: one row per artifact made or failed, with its size against fp32
and the verification figures of its task's gates."""

from __future__ import annotations

from edgederm.manifest import Artifact, Manifest
from edgederm.table import STATUS
from edgederm.tasks import task_of
from quantization.api import QuantizeOutcome

# Column heading and number format by parity figure; a figure not listed shows under its own name.
# The table shows every gate figure of the task but max |Δp| (export's table has it).
HEADINGS = {"top1_agreement": ("top-1 agree", ".4f"), "balanced_accuracy_drop": ("bal-acc drop", "+.4f"),
            "auroc_drop": ("AUROC drop", "+.4f"), "mask_dice_mean": ("mask Dice vs orig", ".4f"),
            "dice_drop": ("Dice drop", "+.4f"), "thresholded_jaccard_drop": ("thr-J drop", "+.4f")}


def fp32_reference(manifest: Manifest, fmt: str) -> Artifact | None:
    """The fp32 artifact a quantized one is sized against: same format, else any fp32 one."""
    fp32 = [a for a in manifest.artifacts if a.precision == "fp32" and a.size_bytes]
    return next((a for a in fp32 if a.format == fmt), fp32[0] if fp32 else None)


def figure_columns(task: str) -> list[tuple[str, str, str]]:
    """(figure, heading, format) of the verification figures the table shows, in gate order."""
    figures = [f for f, _, _ in task_of(task).gate_figures if f != "max_abs_prob"]
    return [(f, *HEADINGS.get(f, (f, ".4f"))) for f in figures]


def summary_rows(outcome: QuantizeOutcome) -> list[dict]:
    """One row per produced or failed artifact: size, ratio to fp32, verify figures, status."""
    manifest = outcome.manifest
    columns = figure_columns(manifest.task)
    by_name = {r.artifact: r for r in outcome.verify}
    rows = []
    for name in outcome.produced:
        a = manifest.artifact(name)
        ref = fp32_reference(manifest, a.format)
        r = by_name.get(name)
        f = r.figures if r else {}
        status = r.status if r else (a.verify or {}).get("status", "-")
        row = {"artifact": name, "format": a.format, "precision": a.precision,
               "size MB": f"{a.size_bytes / 1e6:.2f}",
               "× fp32": f"{a.size_bytes / ref.size_bytes:.3f}" if ref else "-"}
        for key, heading, spec in columns:
            row[heading] = format(f[key], spec) if isinstance(f.get(key), (int, float)) else "-"
        row["status"] = STATUS.get(status, status)
        row["note"] = (r.reason if r and r.status != "pass" else "")[:70]
        rows.append(row)
    for fail in outcome.failures:
        rows.append({"artifact": fail["artifact"], "format": fail["scheme"].split(":")[1], "precision": fail["scheme"],
                     "status": STATUS["export_failed"], "note": fail["error"][:70]})
    return rows

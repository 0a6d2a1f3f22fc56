"""Terminal rows for export/verify results (status legend as users know it from Ultralytics)."""

from __future__ import annotations

STATUS = {"pass": "✅", "fail": "❎", "skipped": "➖", "export_failed": "❌"}
LEGEND = "✅ verified  ❎ exported, verification failed  ➖ exported, not verifiable here  ❌ export failed"


def export_rows(outcome) -> list[dict]:
    manifest = outcome.manifest
    classify = manifest.task == "classification"
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

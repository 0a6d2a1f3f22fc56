"""``edgederm quantize FOLDER --scheme int8``: post-training quantization of an export folder, verified."""

from __future__ import annotations

from edgederm.commands.common import (add_json_option, emit, exit_status, gates_from_args, non_negative_int,
                                      positive_float, positive_int)


def register(sub) -> None:
    sp = sub.add_parser("quantize", help="int8 / fp16 / palettized artifacts from an export folder, verified")
    sp.add_argument("folder", nargs="?", help="export folder (or its manifest.json)")
    sp.add_argument("--scheme", default="int8",
                    help="schemes, comma-separated: names (int8, int8_floatio, dynamic, int16x8, int8_nncf, int8_qdq, fp16, w8, "
                         "palette6, palette4, w8a8) or scheme:format keys; --list shows them (default int8)")
    sp.add_argument("--format", help="formats, comma-separated: onnx, tflite, coreml, executorch (default: those in the folder)")
    sp.add_argument("--calibration", metavar="DIR|NPY",
                    help="calibration images: a folder of image files or a uint8 [N,H,W,3] .npy "
                         "(default: the train split of the model's dataset)")
    sp.add_argument("--calibration-size", type=positive_int, metavar="N",
                    help="calibration images (default 200 for classifiers, 100 for segmenters)")
    sp.add_argument("--calibration-seed", type=non_negative_int, default=0)
    sp.add_argument("--list", dest="list_schemes", action="store_true", help="list the schemes and exit")
    sp.add_argument("--no-verify", action="store_true", help="skip the parity and task-metric gates (recorded)")
    sp.add_argument("--verify-images", type=positive_int, default=512, help="real test images for the gates")
    sp.add_argument("--gate", action="append", metavar="PRECISION:FIGURE:VALUE",
                    help="override a gate, e.g. int8:max_balanced_accuracy_drop:0.01 (repeatable)")
    sp.add_argument("--data", help="data root holding the model's dataset (default: $EDGEDERM_DATA, ../shared/data)")
    sp.add_argument("--max-drop", type=positive_float, metavar="POINTS",
                    help="accuracy-aware: escalate int8 -> int8 + float fallback -> int16 -> QAT -> fp16 until the "
                         "validation metric drops at most POINTS (quantization/control.py); ignores --scheme")
    sp.add_argument("--val-images", type=positive_int, default=512, help="with --max-drop: validation images measured")
    sp.add_argument("--qat-steps", type=non_negative_int, default=100, help="with --max-drop: QAT fine-tuning steps (0 skips QAT)")
    sp.add_argument("--trust-source", action="store_true",
                    help="load a TorchScript original, or a .pt2 with pickled entries (they run code): only for files you made")
    add_json_option(sp)
    sp.set_defaults(func=run)


def list_rows() -> list[dict]:
    from quantization import SCHEMES

    return [{"key": key, "artifact": s.artifact, "calibrated": "yes" if s.calibrated else "-",
             "description": s.description} for key, s in SCHEMES.items()]


def print_outcome(outcome, args) -> int:
    """The produced artifacts as a table (or ``--json``); exit status 1 if a scheme failed or a gate failed."""
    from quantization import summary_rows

    emit({"manifest": str(outcome.folder / "manifest.json"), "calibration": outcome.calibration,
          "notes": list(outcome.notes), "rows": summary_rows(outcome)}, args, show)
    return exit_status([f"{f['scheme']} failed: {f['error']}" for f in outcome.failures], outcome.verify)


def show(s: dict) -> None:
    from edgederm.table import STATUS, print_table

    if s["rows"]:
        print_table(s["rows"])
    c = s["calibration"]
    if c:
        print(f"\ncalibration: {c['count']} images, {c['method']}"
              + (f", {c['split']} split of {c['dataset']}" if c.get("split") else f", from {c['source']}")
              + f" (ids sha256 {c['ids_sha256'][:12]})")
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"manifest: {s['manifest']}")
    print(f"{STATUS['pass']} verified  {STATUS['fail']} gate failed  {STATUS['skipped']} not verifiable here  "
          f"{STATUS['export_failed']} quantization failed")


def run(args) -> int:
    from edgederm.errors import EdgeDermError
    from edgederm.paths import find_data_root

    if args.list_schemes:
        emit(list_rows(), args)
        return 0
    if not args.folder:
        raise EdgeDermError("give the export folder: edgederm quantize FOLDER --scheme int8 (--list shows schemes)")
    if args.verify_images < 1:
        raise EdgeDermError(f"--verify-images {args.verify_images} must be at least 1")
    from quantization import CalibrationConfig, quantize

    if args.max_drop is not None:
        from edgederm.commands.diagnose import run_control

        return run_control(args)

    outcome = quantize(args.folder, args.scheme, args.format,
                       calibration=CalibrationConfig(source=args.calibration, size=args.calibration_size,
                                                     seed=args.calibration_seed),
                       data_root=find_data_root(args.data), verify=not args.no_verify, gates=gates_from_args(args),
                       n_verify=args.verify_images, trust_source=args.trust_source)
    return print_outcome(outcome, args)

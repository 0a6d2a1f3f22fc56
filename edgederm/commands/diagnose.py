"""``edgederm diagnose EXPORT_FOLDER``: where int8 loses the signal, and which float fallbacks buy it back."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit, non_negative_int, positive_int, thread_count


def register(sub) -> None:
    sp = sub.add_parser("diagnose", help="per-layer int8 error (SQNR, cosine) and the float fallbacks that help most")
    sp.add_argument("folder", help="export folder (or its manifest.json) holding the fp32 ONNX file")
    sp.add_argument("--format", default="onnx", choices=["onnx", "tflite"],
                    help="which int8 route to diagnose: ONNX Runtime's, or the TFLite converter's")
    sp.add_argument("--top", type=positive_int, default=10, help="layers shown in the table (worst first)")
    sp.add_argument("--fallback", type=non_negative_int, default=5,
                    help="worst layers re-quantized with a float fallback to measure the gain (0: skip)")
    sp.add_argument("--plot", metavar="PNG", help="write a bar chart of the worst layers' SQNR")
    sp.add_argument("--calibration-images", type=positive_int, default=64, help="train images that set the int8 ranges")
    sp.add_argument("--stat-images", type=positive_int, default=32, help="calibration images the per-layer statistics use")
    sp.add_argument("--eval-images", type=positive_int, default=128, help="verification (test) images for the fallback gains")
    sp.add_argument("--calibrate", default="MinMax", choices=["MinMax", "Entropy", "Percentile"],
                    help="ONNX Runtime range method")
    sp.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    sp.add_argument("--threads", type=thread_count, help="runtime threads")
    sp.add_argument("--data", help="data root holding the model's dataset (default: $EDGEDERM_DATA, ../shared/data)")
    add_json_option(sp)  # the whole diagnosis
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.errors import EdgeDermError
    from edgederm.paths import find_data_root
    from edgederm.table import print_table
    from quantization.diagnose import DiagnoseConfig, diagnose_folder
    from quantization.diagnosis_plot import plot
    from quantization.onnx import OrtStaticConfig

    for flag in ("top", "fallback", "calibration_images", "stat_images", "eval_images"):
        if getattr(args, flag) < (0 if flag == "fallback" else 1):
            raise EdgeDermError(f"--{flag.replace('_', '-')} {getattr(args, flag)} is too small: pass a positive count")
    config = DiagnoseConfig(format=args.format, calibration_images=args.calibration_images,
                            stat_images=args.stat_images, eval_images=args.eval_images, top=args.top,
                            fallback=args.fallback, ort=OrtStaticConfig(per_channel=not args.per_tensor,
                                                              calibrate_method=args.calibrate))
    diag = diagnose_folder(args.folder, config, data_root=find_data_root(args.data), threads=args.threads)
    plotted = plot(diag, args.plot, top=max(args.top, 10)) if args.plot else None

    def show(_payload) -> None:
        print(f"{diag.model}: {diag.format} int8, per-layer error on {diag.stat_images} calibration images "
              f"({len(diag.layers)} quantized tensors; worst own SQNR first)")
        print_table(diag.layer_rows(args.top))
        if diag.fallbacks:
            print(f"\nfloat fallback of the worst layers, on {diag.eval_images} verification images:")
            print_table(diag.fallback_rows())
            pick = diag.recommended()
            print("\nkeep in float: " + (f"{pick.layer} ({len(pick.nodes)} nodes: {', '.join(pick.nodes)})" if pick else
                                         "no single layer helps; try int16 activations, QAT or fp16 "
                                         "(edgederm quantize --max-drop)"))
        if plotted:
            print(f"plot: {plotted}")

    emit(diag.to_dict(), args, show)
    return 0


def run_control(args) -> int:
    """``edgederm quantize FOLDER --max-drop POINTS`` (the flag lives on quantize; the ladder in quantization.control)."""
    from edgederm.commands.common import gates_from_args
    from edgederm.paths import find_data_root
    from quantization.calibration import CalibrationConfig
    from quantization.control import ControlConfig, control_folder
    from quantization.escalation import BudgetNotMet

    fmt = (args.format or "onnx").split(",")
    if len(fmt) != 1:
        from edgederm.errors import EdgeDermError

        raise EdgeDermError("--max-drop escalates one format at a time: pass --format onnx or --format tflite")
    config = ControlConfig(max_drop_pt=args.max_drop, format=fmt[0], val_images=args.val_images,
                           qat_steps=args.qat_steps, n_verify=args.verify_images)
    calibration = CalibrationConfig(source=args.calibration, size=args.calibration_size, seed=args.calibration_seed)
    try:
        result = control_folder(args.folder, config, find_data_root(args.data), calibration, gates_from_args(args))
    except BudgetNotMet as e:
        emit(control_summary(e.result, args, chosen=False), args, show_control)
        from device_bench.console import VERDICT, say

        say(f"edgederm: error: {e}")
        return VERDICT
    emit(control_summary(result, args, chosen=True), args, show_control)
    return 0


def control_summary(result, args, chosen: bool) -> dict:
    return {"metric": result.metric_name, "baseline": result.baseline, "max_drop_pt": args.max_drop,
            "chosen": result.chosen.artifact if chosen else None, "why": result.why if chosen else None,
            "manifest": str(args.folder), "rows": result.rows()}


def show_control(s: dict) -> None:
    from edgederm.table import print_table

    print_table(s["rows"])
    if s["chosen"] is None:
        print(f"\nfp32 {s['metric']} {s['baseline']:.4f} on the validation split; nothing was added to the manifest")
        return
    print(f"\nfp32 {s['metric']} {s['baseline']:.4f} on the validation split; budget {s['max_drop_pt']:g} pt")
    print(f"chosen: {s['chosen']} ({s['why']})")
    print(f"manifest: {s['manifest']}")

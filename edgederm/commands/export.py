"""``edgederm export CHECKPOINT --to FORMATS``: artifacts + manifest, verified; ``--quantize``
then adds quantized artifacts (the export stage, then the quantization stage, composed here)."""

from __future__ import annotations

from pathlib import Path

from converters import DEFAULT_EXPORT, FORMATS
from edgederm.commands.common import add_verifying_options, csv_list, data_root, gates_from_args, print_export
from edgederm.errors import EdgeDermError


def register(sub) -> None:
    sp = sub.add_parser("export", help="checkpoint -> ONNX / TFLite / Core ML artifacts + manifest, verified")
    sp.add_argument("checkpoint", help="EdgeDerm checkpoint (.safetensors + card), model.pt2, TorchScript file, "
                                       "or module.path:factory (with --weights)")
    sp.add_argument("--to", default=",".join(DEFAULT_EXPORT),
                    help=f"formats, comma-separated: {', '.join(FORMATS.names())} (default {','.join(DEFAULT_EXPORT)})")
    sp.add_argument("--out", help="output folder (default exports/<checkpoint name>)")
    sp.add_argument("--coreml-precision", default="fp16", help="fp16, fp32 or fp16,fp32")
    sp.add_argument("--meta", help="YAML/JSON with task, classes, preprocessing (foreign models; docs/byom.md)")
    sp.add_argument("--weights", help="weights for a module.path:factory source (.safetensors or tensors-only pickle)")
    sp.add_argument("--no-verify", action="store_true", help="skip the parity gates (recorded in the manifest)")
    sp.add_argument("--quantize", metavar="SCHEMES",
                    help="then quantize, e.g. int8 or int8,dynamic (edgederm quantize --list); calibrated on train images")
    sp.add_argument("--dynamic-batch", action="store_true", help="ONNX with a free batch dimension (only with --to onnx: onnx2tf and TensorRT INT8 want static shapes)")
    sp.add_argument("--force", action="store_true", help="write into a non-empty --out folder that is not an EdgeDerm export")
    add_verifying_options(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.export import export

    from edgederm.model_sources import default_out_name

    out = Path(args.out) if args.out else Path("exports") / default_out_name(args.checkpoint)
    coreml = csv_list(args.coreml_precision, "--coreml-precision")
    if set(coreml) - {"fp16", "fp32"}:
        raise EdgeDermError(f"--coreml-precision {args.coreml_precision!r}: use fp16, fp32 or fp16,fp32")
    formats = csv_list(args.to, "--to")
    if args.quantize:
        from quantization.api import resolve

        resolve(args.quantize, formats)  # an unknown scheme is refused before any slow work
    root, gates = data_root(args), gates_from_args(args)
    outcome = export(args.checkpoint, out, formats=formats, verify=not args.no_verify, data_root=root,
                     n_verify=args.verify_images, gates=gates, coreml_precisions=tuple(coreml), meta=args.meta,
                     weights=args.weights, dynamic_batch=args.dynamic_batch, force=args.force,
                     trust_source=args.trust_source)
    if args.quantize:
        quantize_export(outcome, args.quantize, root, verify=not args.no_verify, gates=gates)
    return print_export(outcome, args)


def quantize_export(outcome, schemes: str, root, verify: bool, gates: dict) -> None:
    """``--quantize``: the schemes over the formats just exported, verified the same way; their
    artifacts, verdicts and failures join ``outcome`` (one table, one exit status)."""
    from quantization import quantize

    q = quantize(outcome.folder, schemes, outcome.formats, data_root=root, verify=verify, gates=gates,
                 model=outcome.original)
    outcome.quantized, outcome.manifest = q, q.manifest
    outcome.verify += q.verify
    outcome.failures += [{"format": f["scheme"].split(":")[1], "precision": f["scheme"].split(":")[0],
                          "error": f["error"]} for f in q.failures]

"""``edgederm verify FOLDER``: the parity gates again on an export folder, recorded in its manifest."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_verifying_options, data_root, gates_from_args, print_export


def register(sub) -> None:
    sp = sub.add_parser("verify", help="re-run the parity gates on an export folder")
    sp.add_argument("folder", help="export folder or its manifest.json")
    sp.add_argument("--checkpoint", help="the PyTorch original (default: the one the manifest names)")
    sp.add_argument("--meta", help="for a foreign original: its YAML/JSON description")
    sp.add_argument("--weights", help="for a module.path:factory original")
    add_verifying_options(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.byom import original_from_manifest
    from edgederm.export import ExportOutcome, verification_data
    from edgederm.manifest import Manifest
    from edgederm.verify import verify_manifest

    folder = Path(args.folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    manifest.require_complete(folder)
    gates = gates_from_args(args)
    model, _ = original_from_manifest(manifest, folder, args.checkpoint, args.meta, args.weights, trust=args.trust_source)
    images, targets = verification_data(manifest, data_root(args), args.verify_images)
    results = verify_manifest(manifest, folder, model, images, targets, gates)
    manifest.add_step("verify", images=int(len(images)), results={r.artifact: r.status for r in results})
    manifest.save(folder)
    return print_export(ExportOutcome(manifest, folder, verify=results), args)

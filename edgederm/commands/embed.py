"""``edgederm embed EXPORT_FOLDER --platform android|ios|web``: a ready-to-copy app kit (docs/embedding.md)."""

from __future__ import annotations


def register(sub) -> None:
    sp = sub.add_parser("embed", help="export folder -> app kit: Android (LiteRT + Kotlin), iOS (Core ML + Swift), "
                                      "or a static web page (onnxruntime-web)")
    sp.add_argument("folder", help="export folder (or its manifest.json) written by edgederm export")
    sp.add_argument("--platform", required=True, help="android, ios, web, or android-executorch / ios-executorch "
                                                       "(the .pte on ExecuTorch's Module API)")
    sp.add_argument("--artifact", help="artifact name from the manifest (default: the platform's best verified one)")
    sp.add_argument("--out", help="kit folder (default ./<model name>-<platform>; an older kit there is replaced)")
    sp.add_argument("--package", help="Kotlin package of the Android sample (default com.example.edgederm)")
    sp.add_argument("--ort-web", metavar="DIR", help="onnxruntime-web dist/ folder for --platform web "
                                                     "(default: the copy install.sh fetched into $EDGEDERM_HOME/vendor)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.embed import embed

    kit = embed(args.folder, args.platform, artifact=args.artifact, out=args.out, package=args.package,
                ort_web=args.ort_web)
    print(f"{args.platform} kit for artifact {kit.artifact}: {kit.folder}")
    for f in kit.files:
        print(f"  {f}")
    print(f"next: read {kit.folder / 'README.md'}" + (
        f" (serve it: python3 -m http.server --directory {kit.folder} 8000)" if args.platform == "web" else ""))
    return 0

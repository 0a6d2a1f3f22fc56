"""The browser runtime the web kit ships (onnxruntime-web), fetched once with npm at install time.

``python -m edgederm.embed.vendor`` (run by ``install.sh`` when npm is present) installs the
pinned onnxruntime-web from the npm registry and keeps only what the wasm backend needs in
``$EDGEDERM_HOME/vendor/onnxruntime-web/<version>/``; ``edgederm embed --platform web``
copies it from there (or from ``--ort-web DIR`` / ``$EDGEDERM_ORT_WEB``), never from a CDN.
``--test-tools`` also installs playwright-core, which the end-to-end web test drives Chromium with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.paths import home

ORT_WEB_VERSION = "1.30.0"
PLAYWRIGHT_VERSION = "1.65.1"
# The wasm build of onnxruntime-web: the UMD script, its Emscripten loader (imported at run time) and the binary.
ORT_WEB_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_NOTICE = ("onnxruntime-web {version} (npm), MIT License, Copyright (c) Microsoft Corporation.\n"
                  "https://github.com/microsoft/onnxruntime\n")
HOW_TO_GET = (f"run `.venv/bin/python -m edgederm.embed.vendor` once (needs npm and the network; install.sh does it), "
              f"or pass --ort-web DIR with the dist/ folder of an onnxruntime-web {ORT_WEB_VERSION} npm install")


def ort_web_cache(version: str = ORT_WEB_VERSION) -> Path:
    return home() / "vendor" / "onnxruntime-web" / version


def playwright_cache(version: str = PLAYWRIGHT_VERSION) -> Path:
    return home() / "vendor" / "playwright-core" / version / "node_modules" / "playwright-core"


def _dist(folder: Path) -> Path | None:
    """The folder holding the wasm files: ``folder`` itself, its ``dist/``, or an npm prefix's package."""
    for cand in (folder, folder / "dist", folder / "node_modules" / "onnxruntime-web" / "dist"):
        if all((cand / f).is_file() for f in ORT_WEB_FILES):
            return cand
    return None


def ort_web_version(dist: Path) -> str:
    """The version of an onnxruntime-web folder: our VERSION file, else the npm package.json beside dist/."""
    for meta in (dist / "VERSION", dist.parent / "package.json"):
        if meta.is_file():
            text = meta.read_text()
            return json.loads(text)["version"] if meta.suffix == ".json" else text.strip()
    return "unknown"


def find_ort_web(explicit: str | os.PathLike | None = None) -> Path:
    """The onnxruntime-web wasm files to vendor: ``--ort-web``, ``$EDGEDERM_ORT_WEB``, then the cache."""
    if explicit:
        found = _dist(Path(explicit).expanduser())
        if not found:
            raise EdgeDermError(f"--ort-web {explicit} has no {', '.join(ORT_WEB_FILES)}: pass the dist/ folder "
                                f"of an onnxruntime-web npm install")
        return found
    env = os.environ.get("EDGEDERM_ORT_WEB")
    if env:
        found = _dist(Path(env).expanduser())
        if not found:
            raise EdgeDermError(f"$EDGEDERM_ORT_WEB={env} has no {', '.join(ORT_WEB_FILES)}: unset it or point it "
                                "at an onnxruntime-web dist/ folder")
        return found
    found = _dist(ort_web_cache())
    if not found:
        raise EdgeDermError(f"onnxruntime-web {ORT_WEB_VERSION} is not in {ort_web_cache()}: {HOW_TO_GET}")
    return found


def _npm_install(prefix: Path, spec: str) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise EdgeDermError(f"npm not found: install Node.js 18+ (with npm) to fetch {spec}")
    proc = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
                           "--no-save", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgeDermError(f"npm install {spec} failed ({tail[0]}): check the network or npm's registry setting")


def install_ort_web(version: str = ORT_WEB_VERSION) -> Path:
    """npm-install onnxruntime-web ``version`` and keep its wasm files in the cache (atomic)."""
    target = ort_web_cache(version)
    if _dist(target):
        return target
    with tempfile.TemporaryDirectory(prefix="edgederm-npm-") as work:
        _npm_install(Path(work), f"onnxruntime-web@{version}")
        dist = Path(work) / "node_modules" / "onnxruntime-web" / "dist"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in ORT_WEB_FILES:
            shutil.copyfile(dist / f, tmp / f)
        (tmp / "VERSION").write_text(version + "\n")
        (tmp / "NOTICE.txt").write_text(ORT_WEB_NOTICE.format(version=version))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


def install_playwright(version: str = PLAYWRIGHT_VERSION) -> Path:
    """npm-install playwright-core (no browser download: the test uses the system Chromium)."""
    package = playwright_cache(version)
    if (package / "package.json").is_file():
        return package
    prefix = package.parent.parent
    tmp = prefix.with_name(f".{prefix.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _npm_install(tmp, f"playwright-core@{version}")
    shutil.rmtree(prefix, ignore_errors=True)
    os.replace(tmp, prefix)
    return package


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgederm.embed.vendor",
                                description="Fetch onnxruntime-web for `edgederm embed --platform web` (npm, once).")
    p.add_argument("--test-tools", action="store_true", help=f"also playwright-core {PLAYWRIGHT_VERSION} for the web test")
    args = p.parse_args(argv)
    try:
        print(f"onnxruntime-web {ORT_WEB_VERSION}: {install_ort_web()}")
        if args.test_tools:
            print(f"playwright-core {PLAYWRIGHT_VERSION}: {install_playwright()}")
    except EdgeDermError as e:
        print(f"edgederm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

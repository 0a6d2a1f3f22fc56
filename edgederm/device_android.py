"""Latency of a bundle's .tflite files on an Android phone, driven from the workstation with ``adb``.

Pushes the TFLite ``benchmark_model`` binary and each artifact (sha256-checked first) to
``/data/local/tmp/edgederm``, runs it per delegate and thread count with its output sent to a
file on the phone, pulls that file back and parses it (``device_bench.parsers.benchmark_model``).
The raw logs are kept beside the results. ``benchmark_model`` feeds random inputs, so these rows
carry latency and delegation, not accuracy.
"""

from __future__ import annotations

import re

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgederm.errors import EdgeDermError

REMOTE = "/data/local/tmp/edgederm"
DELEGATE_FLAGS = {"cpu": ["--use_xnnpack=false"], "xnnpack": ["--use_xnnpack=true"],
                  "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"]}
PROPS = {"manufacturer": "ro.product.manufacturer", "model": "ro.product.model", "soc": "ro.soc.model",
         "board": "ro.board.platform", "android": "ro.build.version.release", "sdk": "ro.build.version.sdk",
         "abi": "ro.product.cpu.abi"}


@dataclass
class AndroidConfig:
    delegates: list[str] = field(default_factory=lambda: ["xnnpack"])
    threads: list[int] = field(default_factory=lambda: [1, 4])
    warmup: int = 5
    runs: int = 30
    serial: str | None = None
    timeout: float = 600.0

    def __post_init__(self):
        bad = [d for d in self.delegates if d not in DELEGATE_FLAGS]
        if bad:
            raise EdgeDermError(f"--delegate {','.join(bad)} is unknown: use {', '.join(DELEGATE_FLAGS)}")


class Adb:
    def __init__(self, serial: str | None = None, timeout: float = 600.0):
        exe = os.environ.get("ADB") or shutil.which("adb")
        if not exe:
            raise EdgeDermError("adb is not on PATH: install Android platform-tools (or set $ADB to the adb binary)")
        self.exe, self.timeout = exe, timeout
        self.serial = self._pick(serial)

    def _run(self, args: list[str], serial: bool = True) -> str:
        cmd = [self.exe] + (["-s", self.serial] if serial and self.serial else []) + args
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise EdgeDermError(f"adb {' '.join(args[:2])} ran over {self.timeout:.0f} s: is the phone awake and "
                                "connected?") from None
        if out.returncode != 0:
            msg = (out.stderr or out.stdout).strip().splitlines()
            raise EdgeDermError(f"adb {' '.join(args[:2])} failed: {msg[-1] if msg else f'exit {out.returncode}'}")
        return out.stdout

    def _pick(self, serial: str | None) -> str:
        self.serial = None
        lines = self._run(["devices"], serial=False).splitlines()
        ready = [ln.split()[0] for ln in lines[1:] if ln.strip().endswith("device")]
        others = [ln.split() for ln in lines[1:] if ln.strip() and not ln.strip().endswith("device")]
        if serial:
            if serial not in ready:
                state = next((o[1] for o in others if o[0] == serial), "not connected")
                raise EdgeDermError(f"--serial {serial} is {state}: adb devices lists {', '.join(ready) or 'none ready'}")
            return serial
        if not ready:
            hint = f" ({others[0][0]} is {others[0][1]}: accept the USB debugging prompt)" if others else ""
            raise EdgeDermError(f"no Android device ready{hint}: connect one with USB debugging on")
        if len(ready) > 1:
            raise EdgeDermError(f"several devices are connected ({', '.join(ready)}): pass --serial")
        return ready[0]

    def shell(self, command: str) -> str:
        return self._run(["shell", command])

    def push(self, local: Path, remote: str) -> None:
        self._run(["push", str(local), remote])

    def pull(self, remote: str, local: Path) -> None:
        self._run(["pull", remote, str(local)])


def device_facts(adb: Adb) -> dict:
    facts = {"serial": adb.serial, "os": "Android"}
    for key, prop in PROPS.items():
        value = adb.shell(f"getprop {prop}").strip()
        if value:
            facts[key] = value
    gov = adb.shell("cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || true").strip()
    if gov:
        facts["governor"] = gov
    return facts


def run_android(bundle_folder, benchmark_model, config: AndroidConfig, device: str | None = None):
    """Results (``device_bench.results`` schema) for every .tflite artifact x delegate x thread count."""
    from device_bench.results import Results
    from edgederm.manifest import Manifest

    folder = Path(bundle_folder)
    manifest = Manifest.load(folder)
    tflites = [a for a in manifest.artifacts if a.format == "tflite"]
    if not tflites:
        raise EdgeDermError(f"{folder} holds no .tflite artifact: make it with edgederm bundle --target android")
    binary = Path(benchmark_model)
    if not binary.is_file():
        raise EdgeDermError(f"--benchmark-model {binary} is not a file: download the prebuilt android_aarch64 "
                            "benchmark_model from the TFLite performance docs")
    adb = Adb(config.serial, config.timeout)
    facts = device_facts(adb)
    key = device or f"{facts.get('manufacturer', 'Android')} {facts.get('model', '?')}/{adb.serial}"
    results = Results(environments={key: facts}, source="edgederm device android",
                      model={k: manifest.model[k] for k in ("name", "architecture", "task", "classes", "dataset",
                                                            "checkpoint_sha256") if k in manifest.model},
                      data={"note": "benchmark_model feeds random inputs: latency rows only"})
    logs = folder / "android_logs"
    logs.mkdir(exist_ok=True)
    adb.shell(f"mkdir -p {REMOTE}")
    adb.push(binary, f"{REMOTE}/benchmark_model")
    adb.shell(f"chmod 755 {REMOTE}/benchmark_model")
    for a in tflites:
        base = {"artifact": a.name, "format": "tflite", "precision": a.precision, "path": a.path, "sha256": a.sha256,
                "size_bytes": a.size_bytes, "device": key, "role": "artifact"}
        refused = refusal(folder, a)
        if refused:
            results.add({**base, "status": "failed", "reason": refused})
            continue
        remote = f"{REMOTE}/{Path(a.path).name}"
        adb.push(folder / a.path, remote)
        for delegate in config.delegates:
            for threads in config.threads:
                results.add(benchmark_row(adb, a, remote, delegate, threads, config, logs, base))
    return results


def refusal(folder: Path, artifact) -> str | None:
    """Why an artifact is not pushed to the phone (None: it is): a shell-unsafe name, or bytes that
    are not the manifest's."""
    from device_bench.integrity import sha256_path

    local = folder / artifact.path  # Manifest.load kept it inside the bundle
    if not re.fullmatch(r"[A-Za-z0-9._-]+", Path(artifact.path).name):  # it goes into an adb shell line
        return f"{artifact.path}: a file name with shell characters is not pushed to the phone; make the bundle again"
    if not local.exists() or sha256_path(local) != artifact.sha256:
        return f"{artifact.path} is missing or its sha256 differs from the manifest: copy the bundle again"
    return None


def benchmark_row(adb: Adb, artifact, remote: str, delegate: str, threads: int, config: AndroidConfig, logs: Path,
                  base: dict) -> dict:
    """One ``benchmark_model`` run on the phone, its output kept in ``logs`` and parsed into a row."""
    from device_bench.parsers import ParseError, benchmark_model as parser

    tag = f"{Path(artifact.path).stem}_{delegate}_t{threads}"
    args = [f"{REMOTE}/benchmark_model", f"--graph={remote}", f"--num_threads={threads}",
            *DELEGATE_FLAGS[delegate], f"--warmup_runs={config.warmup}", f"--num_runs={config.runs}"]
    adb.shell(" ".join(shlex.quote(x) for x in args) + f" > {REMOTE}/{tag}.txt 2>&1 || true")
    log = logs / f"{tag}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        adb.pull(f"{REMOTE}/{tag}.txt", Path(tmp) / "out.txt")
        shutil.copyfile(Path(tmp) / "out.txt", log)
    try:
        parsed = parser.parse(log.read_text(errors="replace"), str(log))
    except ParseError as e:
        return {**base, "runtime": "benchmark_model", "provider": delegate, "threads": threads,
                "status": "failed", "reason": str(e), "log": str(log)}
    row = parser.to_row(parsed, artifact.name, artifact.precision, device=base["device"],
                        runtime="benchmark_model (TFLite)", path=artifact.path, sha256=artifact.sha256,
                        size_bytes=artifact.size_bytes, log=str(log), command=" ".join(args))
    row["threads"] = row["threads"] or threads
    row["requested_delegate"] = delegate
    return row

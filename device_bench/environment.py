"""Facts about the machine a benchmark ran on, so a latency figure can be reproduced and judged.

Every probe is best-effort and silent when it fails: a phone under Termux, a Jetson, a Raspberry
Pi and a Mac each expose different files. Irreproducible latency is what device users complain
about most, so clocks, governor and power mode are recorded where readable.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "coremltools", "tensorrt")


def _read(path: str, limit: int = 4096) -> str | None:
    try:
        return Path(path).read_bytes()[:limit].decode(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo", 1 << 16)
    if text:
        for key in ("model name", "Hardware", "Processor", "cpu model"):
            m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
            if m:
                return m.group(1).strip()
    return _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor() or None


def cpu_isa() -> dict:
    """{"features": [...], "int8_dot": bool, "label": "AVX-512+VNNI"} (see ``device_bench.isa``)."""
    from device_bench.isa import detect

    return detect(_read, _run)


def _versions() -> dict[str, str]:
    found = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _cpu_clocks() -> dict:
    base = "/sys/devices/system/cpu/cpu0/cpufreq"
    facts = {"governor": _read(f"{base}/scaling_governor")}
    for key, name in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "scaling_max_freq"), ("min_mhz", "scaling_min_freq")):
        v = _read(f"{base}/{name}")
        facts[key] = round(int(v) / 1000) if v and v.isdigit() else None
    return {k: v for k, v in facts.items() if v is not None}


def _jetson() -> dict | None:
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    facts = {"l4t": release.splitlines()[0], "nvpmodel": _run(["nvpmodel", "-q"])}
    for path in sorted(Path("/sys/devices").glob("*gpu*/devfreq/*/cur_freq")) + \
            sorted(Path("/sys/class/devfreq").glob("*gpu*/cur_freq")):
        v = _read(str(path))
        if v and v.isdigit():
            facts["gpu_cur_mhz"] = round(int(v) / 1e6)
            break
    return {k: v for k, v in facts.items() if v}


def _memory_mb() -> int | None:
    text = _read("/proc/meminfo")
    m = re.search(r"MemTotal:\s+(\d+) kB", text or "")
    if m:
        return round(int(m.group(1)) / 1024)
    v = _run(["sysctl", "-n", "hw.memsize"])
    return round(int(v) / 2**20) if v and v.isdigit() else None


def collect() -> dict:
    """The environment record of ``results.json`` for this machine."""
    facts = {
        "hostname": platform.node(),
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),  # AVX2 / AVX-512 / VNNI / AMX, NEON dotprod / I8MM: int8 speed depends on it
        "cpu_count": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "python": sys.version.split()[0],
        "numpy": _numpy_version(),
        "runtimes": _versions(),
        "cpu_clocks": _cpu_clocks(),
        "board_model": _read("/proc/device-tree/model"),  # Raspberry Pi, Jetson, many Android boards
        "mac_model": _run(["sysctl", "-n", "hw.model"]) if platform.system() == "Darwin" else None,
        "jetson": _jetson(),
        "android": _read("/system/build.prop", 1) is not None or "ANDROID_ROOT" in os.environ,
        "trtexec": shutil.which("trtexec"),
    }
    return {k: v for k, v in facts.items() if v not in (None, {}, False)}


def _numpy_version() -> str | None:
    try:
        import numpy

        return numpy.__version__
    except ImportError:
        return None


def device_key(facts: dict) -> str:
    """A readable key: the board (or Mac, or CPU) model and the host name, e.g. ``Raspberry Pi 5 Model B/raspberrypi``.

    Default host names repeat across boards ("raspberrypi", "ubuntu"), hence the model too;
    ``--device NAME`` overrides it.
    """
    model = facts.get("board_model") or facts.get("mac_model") or facts.get("cpu_model") or facts.get("machine", "?")
    model = re.sub(r"\s+(Rev|rev)\s+[\d.]+$", "", model)
    return f"{model}/{facts.get('hostname') or 'host'}"

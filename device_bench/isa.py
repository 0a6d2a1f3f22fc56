"""The CPU's vector and integer-dot-product instruction sets: int8 conclusions depend on them.

An int8 model is only faster than its fp32 twin where the CPU multiplies int8 pairs natively:
VNNI (AVX512-VNNI, AVX-VNNI) or AMX on x86, dotprod / I8MM on ARM. Without them int8 kernels
widen to int16 and are often no faster than fp32. Read from ``/proc/cpuinfo`` flags (Linux,
Android, Jetson, Raspberry Pi) or ``sysctl`` (macOS); best-effort, ``{}`` when unreadable.
"""

from __future__ import annotations

import platform
import re

# kernel flag -> the name users know; order is the order printed
X86 = {"sse4_2": "SSE4.2", "avx": "AVX", "avx2": "AVX2", "fma": "FMA", "f16c": "F16C", "avx512f": "AVX-512",
       "avx512bw": "AVX512-BW", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "avx_vnni_int8": "AVX-VNNI-INT8",
       "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}
ARM = {"asimd": "NEON", "neon": "NEON", "asimdhp": "FP16", "asimddp": "dotprod", "i8mm": "I8MM", "bf16": "BF16",
       "sve": "SVE", "sve2": "SVE2", "sme": "SME"}
# macOS sysctl hw.optional.* key -> name (Apple silicon; Intel Macs report AVX flags under machdep.cpu)
MAC_ARM = {"hw.optional.neon": "NEON", "hw.optional.arm.FEAT_FP16": "FP16", "hw.optional.arm.FEAT_DotProd": "dotprod",
           "hw.optional.arm.FEAT_I8MM": "I8MM", "hw.optional.arm.FEAT_BF16": "BF16", "hw.optional.arm.FEAT_SME": "SME"}
INT8_DOT = {"AVX512-VNNI", "AVX-VNNI", "AVX-VNNI-INT8", "AMX-INT8", "dotprod", "I8MM"}


def from_flags(flags: set[str], machine: str) -> dict:
    """The ISA record for a set of lower-case kernel flags (``flags``/``Features`` of /proc/cpuinfo)."""
    table = X86 if machine.lower() in ("x86_64", "amd64", "i386", "i686") else ARM
    features = list(dict.fromkeys(name for flag, name in table.items() if flag in flags))
    return {"features": features, "int8_dot": bool(INT8_DOT & set(features)), "label": label(features)}


def label(features: list[str]) -> str:
    """A short grouping key, e.g. ``AVX-512+VNNI``, ``AVX2``, ``AVX-512+VNNI+AMX``, ``NEON+dotprod+I8MM``."""
    have = set(features)
    if "NEON" in have or "SVE" in have:
        return "+".join(["NEON"] + [f for f in ("dotprod", "I8MM", "SVE", "SME") if f in have])
    tier = next((t for t in ("AVX-512", "AVX2", "AVX", "SSE4.2") if t in have), "")
    extras = ["VNNI"] if have & {"AVX512-VNNI", "AVX-VNNI", "AVX-VNNI-INT8"} else []
    extras += ["AMX"] if "AMX-INT8" in have else []
    return "+".join([tier] + extras) if tier else "+".join(extras)


def _linux_flags(text: str) -> set[str]:
    m = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return set(m.group(1).lower().split()) if m else set()


def _mac(run) -> dict:
    if platform.machine() == "arm64":
        names = [name for key, name in MAC_ARM.items() if (run(["sysctl", "-n", key]) or "0").strip() == "1"]
        return {"features": names, "int8_dot": bool(INT8_DOT & set(names)), "label": label(names)}
    text = " ".join(filter(None, (run(["sysctl", "-n", k]) for k in
                                  ("machdep.cpu.features", "machdep.cpu.leaf7_features"))))
    mac_names = {"SSE4.2": "sse4_2", "AVX1.0": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c",
                 "AVX512F": "avx512f", "AVX512BW": "avx512bw", "AVX512VNNI": "avx512_vnni"}
    return from_flags({mac_names[f] for f in text.upper().split() if f in mac_names}, "x86_64")


def detect(read, run) -> dict:
    """This machine's ISA record; ``read(path, limit)`` and ``run(cmd)`` are environment's silent probes."""
    text = read("/proc/cpuinfo", 1 << 16)
    if text:
        flags = _linux_flags(text)
        if flags:
            return from_flags(flags, platform.machine())
    if platform.system() == "Darwin":
        return _mac(run)
    return {}

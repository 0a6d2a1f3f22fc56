"""Facts about the machine a figure was measured on, recorded with every results row."""

from __future__ import annotations

import os
import platform
import socket


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_facts() -> tuple[str, dict]:
    """(device key, facts): CPU, cores, OS, Python and library versions, GPU if any."""
    import numpy as np

    facts = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
             "machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
             "hostname": socket.gethostname()}
    versions = {}
    for module in ("torch", "onnxruntime", "ai_edge_litert", "tensorflow", "coremltools"):
        try:
            from importlib.metadata import version

            versions[module] = version(module.replace("_", "-"))
        except Exception:  # not installed here
            continue
    facts["versions"] = versions
    try:
        import torch

        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["cuda"] = torch.version.cuda
    except ImportError:
        pass
    key = f"{facts['cpu']} x{facts['cpu_count']}" + (f" + {facts['gpu']}" if "gpu" in facts else "")
    return key, facts

"""Facts about the machine a figure was measured on: the device's own record plus torch and GPU."""

from __future__ import annotations


def environment_facts() -> tuple[str, dict]:
    """(device key, facts) in the form ``device_bench`` writes on devices, so merged reports line up."""
    from importlib import metadata

    from device_bench.environment import collect, device_key

    facts = collect()
    for package in ("torch", "tensorflow", "onnx2tf", "nncf"):
        try:
            facts.setdefault("runtimes", {})[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return device_key(facts), facts

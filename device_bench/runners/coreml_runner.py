"""Core ML through coremltools: prediction needs macOS (compute units CPU, GPU or Neural Engine)."""

from __future__ import annotations

import platform

import numpy as np

from device_bench.runners import RunnerUnavailable

COMPUTE_UNITS = {"cpu": "CPU_ONLY", "gpu": "CPU_AND_GPU", "ane": "CPU_AND_NE", "all": "ALL"}


class Runner:
    def __init__(self, path: str, threads: int | None = None, compute_units: str = "all"):
        if platform.system() != "Darwin":
            raise RunnerUnavailable("Core ML prediction needs macOS (coremltools predicts only there)")
        try:
            import coremltools as ct
        except ImportError as e:
            raise RunnerUnavailable(f"coremltools is not installed ({e})") from None
        self.model = ct.models.MLModel(path, compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units]))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_names = [o.name for o in spec.description.output]
        self.runtime = f"coremltools {ct.__version__}"
        self.delegate = COMPUTE_UNITS[compute_units]
        self.threads = threads

    def __call__(self, x_uint8_nhwc: np.ndarray) -> np.ndarray:
        """Core ML image inputs take pixels: pass uint8 NHWC RGB; normalisation is inside the model."""
        from PIL import Image

        outs = []
        for img in x_uint8_nhwc:
            result = self.model.predict({self.input_name: Image.fromarray(img.astype(np.uint8))})
            key = next((k for k in result if k.endswith("_probs") or k == "logits" or k == "mask_logits"),
                       self.output_names[0])
            value = result[key]
            outs.append(np.array(list(value.values())) if isinstance(value, dict) else np.asarray(value)[0])
        return np.stack(outs)

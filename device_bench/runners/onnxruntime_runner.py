"""ONNX Runtime (CPU, CUDA or TensorRT execution provider)."""

from __future__ import annotations

import numpy as np

from device_bench.runners import RunnerUnavailable


class Runner:
    def __init__(self, path: str, threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RunnerUnavailable(f"onnxruntime is not installed ({e})") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        self.providers = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, sess_options=opts, providers=self.providers)
        self.input = self.session.get_inputs()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.runtime = f"onnxruntime {ort.__version__}"
        self.delegate = ",".join(self.session.get_providers())
        self.threads = threads

    @property
    def input_shape(self):
        return list(self.input.shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names[:1], {self.input.name: x.astype(np.float32, copy=False)})[0]

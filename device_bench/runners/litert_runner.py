"""LiteRT interpreter (``ai-edge-litert``; ``tflite-runtime`` on old devices), XNNPACK on by default.

Integer I/O models are fed and read through their quantisation parameters, so callers always
pass and get float32.
"""

from __future__ import annotations

import numpy as np

from device_bench.runners import RunnerUnavailable


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        import ai_edge_litert

        return Interpreter, f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        import tflite_runtime

        return Interpreter, f"tflite-runtime {getattr(tflite_runtime, '__version__', '?')}"
    except ImportError as e:
        raise RunnerUnavailable(f"neither ai-edge-litert nor tflite-runtime is installed ({e})") from None


class Runner:
    def __init__(self, path: str, threads: int | None = None, xnnpack: bool = True):
        Interpreter, self.runtime = _interpreter_class()
        kwargs = {"model_path": path, "num_threads": threads}
        if not xnnpack:
            from ai_edge_litert.interpreter import OpResolverType

            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise RunnerUnavailable(f"LiteRT cannot load {path}: {str(e).splitlines()[0]}") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.delegate = "XNNPACK" if xnnpack else "builtin"
        self.threads = threads

    @property
    def input_shape(self):
        return list(self.input["shape"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if list(x.shape) != list(self.input["shape"]):
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

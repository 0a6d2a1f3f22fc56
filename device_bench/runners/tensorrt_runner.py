"""TensorRT through its Python API (``tensorrt``: JetPack's, or the PyPI wheel on x86), with accuracy.

The engine is built on the device from the bundle's ONNX file (engines belong to one GPU and one
TensorRT version, so bundles carry ONNX, not engines) and cached under ``engines/``, keyed by GPU
name and compute capability, TensorRT version, the ONNX file's sha256 and the precision:

- ``fp32``: no reduced precision (TF32 switched off, so fp32 means fp32);
- ``fp16``: ``BuilderFlag.FP16``;
- ``int8``: from a QDQ file (``int8_qdq:onnx``, explicit quantization): TensorRT honours its
  calibrated scales; FP16 is allowed for the layers left in float;
- ``int8_uncalibrated``: what ``trtexec --int8`` does with an fp32 file and no calibration cache
  (every tensor gets the placeholder range trtexec uses, ±2 for inputs, ±4 elsewhere): a latency
  figure whose accuracy is shown to say what such an engine is worth.

Buffers, streams and CUDA events come from ``cuda-python`` (``cuda.bindings.runtime``, or the older
``cuda.cudart``). Timing: CUDA events around host->device copy, ``execute_async_v3`` and
device->host copy, after warm-up, in rounds; median/p90 as ``device_bench.timing``. Placement:
the engine inspector's per-layer formats (built with detailed profiling verbosity).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from device_bench.runners import RunnerUnavailable
from device_bench.tensorrt import QDQ_PRECISIONS  # int8_qdq, int8_nncf: QDQ files TensorRT takes as they are
from device_bench.timing import summarize

PRECISIONS = ("fp32", "fp16", "int8", "int8_uncalibrated")
FLAGS = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"], "int8_uncalibrated": ["INT8", "FP16"]}
PLACEHOLDER_RANGE = {"input": 2.0, "other": 4.0}  # trtexec's setTensorDynamicRange(network, 2, 4)
INSTALL = ("pip install -r requirements-gpu.txt (x86: tensorrt-cu13, cuda-python); on Jetson, JetPack ships "
           "python3-libnvinfer: sudo apt install python3-libnvinfer and pip install cuda-python")


# --- what to build: pure functions, tested without a GPU -------------------------------------------
def select(artifacts: list[dict], precisions) -> tuple[list[tuple[dict, str]], list[tuple[dict, str]]]:
    """(artifact, engine precision) pairs to build and (artifact, reason) pairs skipped.

    An fp32/fp16 ONNX file gives the fp32 and fp16 engines asked for, and ``int8_uncalibrated``
    when int8 is asked for; a QDQ file (``int8_qdq``, ``int8_nncf``) gives the calibrated ``int8``
    engine; other quantized ONNX files (QOperator ``QLinearConv``, dynamic) are not TensorRT input.
    """
    want = [p for p in precisions if p in PRECISIONS]
    jobs, skipped = [], []
    for a in artifacts:
        if a.get("format") != "onnx":
            continue
        p = a.get("precision", "fp32")
        if p in ("fp32", "fp16"):
            jobs += [(a, q) for q in ("fp32", "fp16") if q in want]
            if "int8" in want or "int8_uncalibrated" in want:
                jobs.append((a, "int8_uncalibrated"))
        elif p in QDQ_PRECISIONS:
            if "int8" in want:
                jobs.append((a, "int8"))
        else:
            skipped.append((a, f"{a['name']} ({p}) is not a QDQ or float ONNX file (QOperator/integer ops TensorRT "
                               "does not parse): quantize with --scheme int8_qdq for TensorRT int8"))
    return jobs, skipped


def builder_flags(trt, precision: str) -> tuple[list, list, list[str]]:
    """(flags to set, flags to clear, notes) for ``precision``; ``RunnerUnavailable`` if this TensorRT lacks one."""
    if precision not in FLAGS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    have = trt.BuilderFlag
    missing = [f for f in FLAGS[precision] if not hasattr(have, f)]
    if missing:
        raise RunnerUnavailable(f"TensorRT {trt.__version__} has no BuilderFlag.{', '.join(missing)} (weakly typed "
                                f"{precision} builds were removed there): use a TensorRT 10.x, as requirements-gpu.txt pins")
    on = [getattr(have, f) for f in FLAGS[precision]]
    off = [have.TF32] if precision == "fp32" and hasattr(have, "TF32") else []
    notes = {"fp32": ["fp32 engine, TF32 off"], "fp16": ["fp16 engine (FP16 flag; TensorRT may keep layers in fp32)"],
             "int8": ["int8 from the QDQ file: TensorRT explicit quantization with EdgeDerm's calibrated scales"],
             "int8_uncalibrated": ["UNCALIBRATED int8: fp32 ONNX with trtexec's placeholder ranges (±2 inputs, ±4 "
                                   "elsewhere), as trtexec --int8 without a calibration cache; accuracy shown to "
                                   "say what such an engine is worth"]}[precision]
    return on, off, notes


def cache_key(gpu: str, capability: str, trt_version: str, onnx_sha256: str, precision: str) -> str:
    """The engine's identity: another GPU, TensorRT, ONNX file or precision is another engine."""
    text = "\n".join(["edgederm.trt.v1", gpu, capability, trt_version, onnx_sha256, precision])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_path(engines: Path, onnx: Path, precision: str, key: str) -> Path:
    return Path(engines) / f"{Path(onnx).stem}_{precision}_{key}.engine"


def _layer_precision(layer: dict) -> str:
    text = " ".join(str(layer.get(k, "")) for k in ("Precision", "OutputPrecision"))
    if not text.strip():  # detailed JSON: formats of the layer's outputs, e.g. "Row major linear FP16 format"
        text = " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []) if isinstance(o, dict))
    text = text.lower()
    for name, words in (("int8", ("int8",)), ("fp16", ("fp16", "half")), ("fp8", ("fp8",)), ("int32", ("int32",)),
                        ("fp32", ("fp32", "float"))):
        if any(re.search(rf"\b{w}\b", text) for w in words):
            return name
    return "unknown"


def layer_precisions(info: str | dict) -> dict:
    """Counts of engine layers by output precision from the inspector's JSON (``get_engine_information``)."""
    data = json.loads(info) if isinstance(info, str) else info
    layers = [x for x in data.get("Layers", []) if isinstance(x, dict)]
    by: dict[str, int] = {}
    for layer in layers:
        p = _layer_precision(layer)
        by[p] = by.get(p, 0) + 1
    return {"layers": len(layers), "by_precision": dict(sorted(by.items())),
            "unit": "TensorRT engine layers after fusion (engine inspector), by output precision"}


# --- CUDA through cuda-python -------------------------------------------------------------------------
def load_cuda():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise RunnerUnavailable(f"cuda-python is not installed (buffers and CUDA events): {INSTALL}") from None
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise RunnerUnavailable(f"no CUDA device is visible (cudaGetDeviceCount: {err}, {count} devices)")
    return Cuda(cudart)


class Cuda:
    """The few CUDA runtime calls the runner needs; every error becomes a RuntimeError naming the call."""

    def __init__(self, cudart):
        self.rt = cudart

    def call(self, name: str, *args):
        out = getattr(self.rt, name)(*args)
        err, rest = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        if int(err) != 0:
            raise RuntimeError(f"{name} failed: {err}")
        return rest[0] if len(rest) == 1 else rest

    def device(self) -> tuple[str, str]:
        props = self.call("cudaGetDeviceProperties", 0)
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.strip("\x00 "), f"{props.major}.{props.minor}"

    def h2d(self, dst, arr: np.ndarray, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call("cudaMemcpyAsync", dst, arr.ctypes.data, arr.nbytes, kind, stream)

    def d2h(self, arr: np.ndarray, src, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.call("cudaMemcpyAsync", arr.ctypes.data, src, arr.nbytes, kind, stream)


def load_trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise RunnerUnavailable(f"the tensorrt Python module is not installed: {INSTALL}") from None
    return trt


# --- the runner ---------------------------------------------------------------------------------------
class Runner:
    """One engine for one ONNX file at one precision; ``runner(x)`` -> first output (float32)."""

    def __init__(self, path: str, threads: int | None = None, precision: str = "fp16", engines: str | None = None,
                 sha256: str | None = None, workspace_mb: int = 1024, trt=None, cuda=None):
        self.trt = trt or load_trt()
        self.cuda = cuda or load_cuda()
        self.path, self.precision, self.threads = Path(path), precision, None
        gpu, capability = self.cuda.device()
        self.gpu = gpu
        on, off, self.notes = builder_flags(self.trt, precision)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        digest = sha256 or hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.key = cache_key(gpu, capability, self.trt.__version__, digest, precision)
        folder = Path(engines) if engines else self.path.parent / "engines"
        self.engine_file = engine_path(folder, self.path, precision, self.key)
        self.cached = self.engine_file.exists()
        blob = self.engine_file.read_bytes() if self.cached else self._build(on, off, workspace_mb, folder)
        self.engine = self.trt.Runtime(self.logger).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {self.engine_file.name}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.runtime = f"tensorrt {self.trt.__version__}"
        self.delegate = f"TensorRT {precision} on {gpu}"
        self.row_fields = {"artifact": f"trt_{precision}", "precision": precision, "format": "tensorrt",
                           "engine": {"file": self.engine_file.name, "cache_key": self.key, "reused": self.cached,
                                      "gpu": gpu, "compute_capability": capability}}
        self._bind()

    def _build(self, on, off, workspace_mb: int, folder: Path) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        network = builder.create_network(0 if explicit is None else 1 << int(explicit))  # TensorRT 10: always explicit
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.path.read_bytes()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError(f"TensorRT's ONNX parser refused {self.path.name}: {errors[0] if errors else 'no detail'}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if hasattr(trt, "ProfilingVerbosity"):
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer formats for placement
        for flag in on:
            config.set_flag(flag)
        for flag in off:
            config.clear_flag(flag)
        if self.precision == "int8_uncalibrated":
            set_placeholder_ranges(network)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise RuntimeError(f"TensorRT could not build a {self.precision} engine from {self.path.name}")
        data = bytes(blob)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = self.engine_file.with_name(f".{self.engine_file.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(self.engine_file)  # atomic: a half-written engine is never taken from the cache
        return data

    def _bind(self):
        trt, eng = self.trt, self.engine
        self.buffers, self.host, self.inputs, self.outputs = {}, {}, [], []
        for i in range(eng.num_io_tensors):
            name = eng.get_tensor_name(i)
            shape = tuple(int(d) for d in eng.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"{self.path.name} has a dynamic shape {shape} at {name}: export it with static shapes")
            host = np.zeros(shape, dtype=trt.nptype(eng.get_tensor_dtype(name)))
            self.host[name] = host
            self.buffers[name] = self.cuda.call("cudaMalloc", max(host.nbytes, 1))
            self.context.set_tensor_address(name, int(self.buffers[name]))
            is_input = eng.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
        self.stream = self.cuda.call("cudaStreamCreate")
        try:  # TensorRT takes the stream as an integer handle; cuda-python's cudaStream_t converts with int()
            self.stream_handle = int(self.stream)
        except (TypeError, ValueError):
            self.stream_handle = self.stream
        self.start, self.end = self.cuda.call("cudaEventCreate"), self.cuda.call("cudaEventCreate")

    @property
    def input_shape(self):
        return list(self.host[self.inputs[0]].shape)

    def _enqueue(self, x: np.ndarray):
        name = self.inputs[0]
        src = np.ascontiguousarray(x, dtype=self.host[name].dtype).reshape(self.host[name].shape)
        self.cuda.h2d(self.buffers[name], src, self.stream)
        if not self.context.execute_async_v3(self.stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for out in self.outputs:
            self.cuda.d2h(self.host[out], self.buffers[out], self.stream)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._enqueue(x)
        self.cuda.call("cudaStreamSynchronize", self.stream)
        return self.host[self.outputs[0]].astype(np.float32, copy=True)

    def measure(self, x: np.ndarray, warmup: int = 5, runs: int = 30, max_seconds: float = 20.0,
                rounds: int = 5) -> dict:
        """CUDA-event time per call (H2D copy + engine + D2H copy), ``runs`` over ``rounds`` after ``warmup``."""
        for _ in range(warmup):
            self(x)
        per_round, times, medians, spent = max(1, -(-runs // rounds)), [], [], 0.0
        for _ in range(rounds):
            block = []
            for _ in range(per_round):
                self.cuda.call("cudaEventRecord", self.start, self.stream)
                self._enqueue(x)
                self.cuda.call("cudaEventRecord", self.end, self.stream)
                self.cuda.call("cudaEventSynchronize", self.end)
                block.append(float(self.cuda.call("cudaEventElapsedTime", self.start, self.end)))
            times += block
            medians.append(float(np.median(block)))
            spent += sum(block) / 1e3
            if spent > max_seconds and len(times) >= 5:
                break
        return summarize(times, warmup) | {"rounds": len(medians), "round_medians_ms": [round(m, 4) for m in medians],
                                           "timer": "CUDA events: H2D copy + execute_async_v3 + D2H copy"}

    def placement(self) -> dict:
        inspector = self.engine.create_engine_inspector()
        info = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        return layer_precisions(info)

    def __del__(self):
        for ptr in getattr(self, "buffers", {}).values():
            try:
                self.cuda.call("cudaFree", ptr)
            except Exception:  # interpreter shutdown: the driver frees it anyway
                pass


def set_placeholder_ranges(network) -> None:
    """trtexec's ranges for an uncalibrated ``--int8`` build: ±2 on network inputs, ±4 on every layer output."""
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    for i in range(network.num_inputs):
        r = PLACEHOLDER_RANGE["input"]
        network.get_input(i).set_dynamic_range(-r, r)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            t = layer.get_output(j)
            if t.name not in inputs:
                r = PLACEHOLDER_RANGE["other"]
                t.set_dynamic_range(-r, r)

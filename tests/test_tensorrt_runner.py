"""The TensorRT Python-API runner without a GPU: a stand-in ``tensorrt`` and ``cuda.bindings.runtime``.

What the stand-ins prove: which engines are chosen for which ONNX files, the builder flags and
placeholder ranges each precision sets, the engine cache key and reuse, the CUDA-event timing
path, placement read from the inspector's JSON, and the skip reasons when tensorrt, cuda-python or
a CUDA device is absent. The stand-in engine runs the ONNX file through ONNX Runtime on the CPU, so
the rows carry real accuracy figures of that file; nothing here measures TensorRT itself (the GPU
figures are pending: docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import json
import shutil
import sys
import time
import types

import numpy as np
import pytest

from device_bench.runners import RunnerUnavailable
from device_bench.runners import tensorrt_runner as T

# A detailed-verbosity inspector document, in the layout TensorRT 10 documents for
# IEngineInspector::getEngineInformation(kJSON) (written by hand, not recorded on a GPU).
INSPECTOR = {"Layers": [
    {"Name": "conv1 + relu", "LayerType": "CaskConvolution",
     "Outputs": [{"Name": "a", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
    {"Name": "conv2", "LayerType": "CaskConvolution",
     "Outputs": [{"Name": "b", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
    {"Name": "head", "LayerType": "CaskGemm", "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "reformat", "LayerType": "Reformat", "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear FP32"}]},
], "Bindings": ["input", "logits"]}


# --- stand-ins ------------------------------------------------------------------------------------------
class FakeCudaRuntime(types.ModuleType):
    """cuda.bindings.runtime over host memory: cudaMalloc hands out numpy buffers, copies are memmove."""

    def __init__(self, devices=1):
        super().__init__("cuda.bindings.runtime")
        self.devices, self.mem, self.calls = devices, {}, []
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def cudaGetDeviceCount(self):
        return 0, self.devices

    def cudaGetDeviceProperties(self, i):
        return 0, types.SimpleNamespace(name=b"FAKE H200\x00", major=9, minor=0)

    def cudaMalloc(self, n):
        buf = np.zeros(n, np.uint8)
        self.mem[buf.ctypes.data] = buf
        return 0, buf.ctypes.data

    def cudaFree(self, ptr):
        self.mem.pop(ptr, None)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.calls.append(("memcpy", kind))
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamCreate(self):
        return 0, "stream"

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaEventCreate(self):
        return 0, types.SimpleNamespace(t=0.0)

    def cudaEventRecord(self, ev, stream):
        self.calls.append(("event", stream))
        ev.t = time.perf_counter()
        return (0,)

    def cudaEventSynchronize(self, ev):
        return (0,)

    def cudaEventElapsedTime(self, a, b):
        return 0, (b.t - a.t) * 1e3


class Logger:
    WARNING = 2

    def __init__(self, level):
        pass


class Tensor:
    def __init__(self, name):
        self.name, self.range = name, None

    def set_dynamic_range(self, lo, hi):
        self.range = (lo, hi)


class Layer:
    def __init__(self, i):
        self.num_outputs, self.out = 1, Tensor(f"t{i}")

    def get_output(self, j):
        return self.out


class Network:
    def __init__(self):
        self.num_inputs, self.inp, self.num_layers = 1, Tensor("input"), 3
        self.layers = [Layer(i) for i in range(3)]

    def get_input(self, i):
        return self.inp

    def get_layer(self, i):
        return self.layers[i]


class Config:
    def __init__(self):
        self.flags, self.cleared, self.profiling_verbosity = set(), set(), None

    def set_memory_pool_limit(self, pool, n):
        self.workspace = n

    def set_flag(self, f):
        self.flags.add(f)

    def clear_flag(self, f):
        self.cleared.add(f)


class OnnxParser:
    def __init__(self, network, logger):
        self.network, self.num_errors = network, 0

    def parse(self, data):
        self.network.onnx = data
        return data[:1] != b"X"


class Builder:
    """Records the flags and ranges of each build; the "engine" is the ONNX file, kept by key."""

    def __init__(self, trt, logger):
        self.trt = trt

    def create_network(self, flags):
        return Network()

    def create_builder_config(self):
        return Config()

    def build_serialized_network(self, network, config):
        key = str(len(self.trt.onnx_by_key))
        self.trt.onnx_by_key[key] = network.onnx
        ranges = sorted({t.range for t in [network.inp] + [x.out for x in network.layers] if t.range})
        record = {"key": key, "flags": sorted(config.flags), "cleared": sorted(config.cleared),
                  "ranges": ranges, "verbosity": config.profiling_verbosity}
        self.trt.builds.append(record)
        return json.dumps(record).encode()


class Context:
    def __init__(self, engine):
        self.engine, self.addr = engine, {}

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        e, mem = self.engine, self.engine.cuda.mem
        x = mem[self.addr[e.names[0]]].view(np.float32).reshape(e.shapes[0])
        y = e.session.run(None, {e.session.get_inputs()[0].name: x})[0].astype(np.float32)
        mem[self.addr[e.names[1]]][:] = np.ascontiguousarray(y).view(np.uint8).ravel()
        return True


class Engine:
    """Runs the built ONNX file with ONNX Runtime on the CPU through the fake device buffers."""

    def __init__(self, trt, blob):
        import onnxruntime as ort

        self.record, self.cuda, self.num_io_tensors = json.loads(blob), trt.cuda, 2
        self.session = ort.InferenceSession(trt.onnx_by_key[self.record["key"]], providers=["CPUExecutionProvider"])
        self.names = [self.session.get_inputs()[0].name, self.session.get_outputs()[0].name]
        self.shapes = [tuple(self.session.get_inputs()[0].shape), tuple(self.session.get_outputs()[0].shape)]

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_shape(self, name):
        return self.shapes[self.names.index(name)]

    def get_tensor_dtype(self, name):
        return "FLOAT"

    def get_tensor_mode(self, name):
        return "INPUT" if name == self.names[0] else "OUTPUT"

    def create_execution_context(self):
        return Context(self)

    def create_engine_inspector(self):
        return types.SimpleNamespace(get_engine_information=lambda fmt: json.dumps(INSPECTOR))


def fake_tensorrt(cuda: FakeCudaRuntime, flags=("FP16", "INT8", "TF32"), version="10.13.3"):
    """A ``tensorrt`` module whose engine runs the parsed ONNX file with ONNX Runtime on the CPU."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__, trt.cuda, trt.builds, trt.onnx_by_key = version, cuda, [], {}
    trt.BuilderFlag = types.SimpleNamespace(**{f: f for f in flags})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace()  # TensorRT 10: networks are always explicit-batch
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="JSON")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = lambda dtype: np.float32
    trt.Logger, trt.OnnxParser = Logger, OnnxParser
    trt.Builder = lambda logger: Builder(trt, logger)
    trt.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda blob: Engine(trt, blob))
    return trt


@pytest.fixture
def gpu(monkeypatch):
    """Install the stand-ins in sys.modules (as the real modules would be imported)."""
    cuda = FakeCudaRuntime()
    trt = fake_tensorrt(cuda)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cuda
    root = types.ModuleType("cuda")
    root.bindings = bindings
    for name, mod in (("tensorrt", trt), ("cuda", root), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cuda)):
        monkeypatch.setitem(sys.modules, name, mod)
    return trt, cuda


# --- pure logic ------------------------------------------------------------------------------------------
def _art(name, precision, fmt="onnx"):
    return {"name": name, "format": fmt, "precision": precision, "path": f"{name}.onnx", "sha256": "0" * 64}


def test_select_builds_float_engines_from_fp32_and_int8_from_the_qdq_file():
    fp32, qdq, qop, tfl = _art("onnx_fp32", "fp32"), _art("onnx_int8_qdq", "int8_qdq"), _art("onnx_int8", "int8"), \
        _art("tflite_fp32", "fp32", "tflite")
    jobs, skipped = T.select([fp32, qdq, qop, tfl], ["fp32", "fp16", "int8"])
    assert [(a["name"], p) for a, p in jobs] == [("onnx_fp32", "fp32"), ("onnx_fp32", "fp16"),
                                                 ("onnx_fp32", "int8_uncalibrated"), ("onnx_int8_qdq", "int8")]
    assert [a["name"] for a, _ in skipped] == ["onnx_int8"] and "int8_qdq" in skipped[0][1]
    jobs, _ = T.select([fp32, qdq], ["fp16"])
    assert [(a["name"], p) for a, p in jobs] == [("onnx_fp32", "fp16")]  # no int8 asked: neither int8 engine


def test_builder_flags_per_precision(gpu):
    trt, _ = gpu
    assert T.builder_flags(trt, "fp32")[:2] == ([], ["TF32"])
    assert T.builder_flags(trt, "fp16")[:2] == (["FP16"], [])
    on, off, notes = T.builder_flags(trt, "int8")
    assert on == ["INT8", "FP16"] and off == [] and "QDQ" in notes[0]
    assert "UNCALIBRATED" in T.builder_flags(trt, "int8_uncalibrated")[2][0]
    strongly_typed = fake_tensorrt(FakeCudaRuntime(), flags=("TF32",), version="11.4.0")
    with pytest.raises(RunnerUnavailable, match=r"TensorRT 11.4.0 has no BuilderFlag.FP16.*10.x"):
        T.builder_flags(strongly_typed, "fp16")
    with pytest.raises(ValueError, match="bf16"):
        T.builder_flags(trt, "bf16")


def test_cache_key_changes_with_gpu_version_file_and_precision():
    base = ("NVIDIA H200", "9.0", "10.13.3", "a" * 64, "fp16")
    key = T.cache_key(*base)
    assert key == T.cache_key(*base) and len(key) == 16
    for i, other in enumerate(("Orin", "8.7", "10.3.0", "b" * 64, "int8")):
        changed = list(base)
        changed[i] = other
        assert T.cache_key(*changed) != key, i


def test_layer_precisions_from_the_inspector():
    p = T.layer_precisions(json.dumps(INSPECTOR))
    assert p["layers"] == 4 and p["by_precision"] == {"fp16": 1, "fp32": 2, "int8": 1}
    assert T.layer_precisions({"Layers": [{"Name": "x", "Precision": "INT8"}]})["by_precision"] == {"int8": 1}


def test_skip_reasons_without_tensorrt_cuda_python_or_a_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RunnerUnavailable, match="tensorrt Python module is not installed.*requirements-gpu.txt"):
        T.load_trt()
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(RunnerUnavailable, match="cuda-python is not installed"):
        T.load_cuda()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = FakeCudaRuntime(devices=0)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda", types.SimpleNamespace(bindings=bindings))
    with pytest.raises(RunnerUnavailable, match="no CUDA device is visible"):
        T.load_cuda()


# --- the runner and device_bench over a bundle -------------------------------------------------------------
@pytest.fixture(scope="module")
def qdq_bundle(tiny_classifier, synthetic_root, tmp_path_factory):
    """A Jetson bundle of the tiny classifier: fp32 ONNX + the TensorRT-ready QDQ file."""
    from edgederm.bundle import make_bundle
    from edgederm.export import export
    from quantization import quantize

    folder = tmp_path_factory.mktemp("trt") / "export"
    assert not export(tiny_classifier, folder, formats=["onnx"], data_root=synthetic_root, n_verify=32).failures
    out = quantize(folder, ["int8_qdq:onnx"], data_root=synthetic_root, verify=False)
    assert out.produced == ["onnx_int8_qdq"], out.failures
    return make_bundle(folder, "jetson", out=tmp_path_factory.mktemp("bundles"), n_images=24,
                       data_root=synthetic_root).folder


def test_runner_builds_caches_and_times_with_cuda_events(gpu, qdq_bundle, tmp_path):
    trt, cuda = gpu
    onnx = qdq_bundle / "model.onnx"
    r = T.Runner(str(onnx), precision="int8_uncalibrated", engines=str(tmp_path))
    assert not r.cached and r.engine_file.exists() and r.key in r.engine_file.name
    build = trt.builds[-1]
    assert build["flags"] == ["FP16", "INT8"] and build["ranges"] == [(-4.0, 4.0), (-2.0, 2.0)]
    assert build["verbosity"] == "DETAILED"
    x = np.random.default_rng(0).standard_normal(r.input_shape).astype(np.float32)
    assert r(x).shape[0] == 1
    lat = r.measure(x, warmup=1, runs=6, rounds=3)
    assert lat["runs"] == 6 and lat["rounds"] == 3 and "CUDA events" in lat["timer"]
    assert ("event", "stream") in cuda.calls and ("memcpy", 1) in cuda.calls and ("memcpy", 2) in cuda.calls
    again = T.Runner(str(onnx), precision="int8_uncalibrated", engines=str(tmp_path))
    assert again.cached and len(trt.builds) == 1 and again.row_fields["engine"]["reused"]
    fp32 = T.Runner(str(onnx), precision="fp32", engines=str(tmp_path))
    assert fp32.key != r.key and trt.builds[-1]["cleared"] == ["TF32"] and trt.builds[-1]["ranges"] == []


def test_device_bench_runs_tensorrt_rows_with_accuracy(gpu, qdq_bundle, tmp_path):
    from device_bench import bench
    from device_bench import bundle as bundle_io

    b = bundle_io.load(qdq_bundle)
    config = bench.DeviceBenchConfig(threads=[1], runtimes=["tensorrt"], trt_precisions=["fp16", "int8"], warmup=1,
                                     runs=5, n_boot=50, quiet=True)
    res = bench.run(b, config, engines_dir=tmp_path / "engines")
    rows = {r["artifact"]: r for r in res.rows}
    assert set(rows) == {"trt_fp16", "trt_int8", "trt_int8_uncalibrated"}, [(r["artifact"], r.get("reason")) for r in res.rows]
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["trt_int8"]["source_artifact"] == "onnx_int8_qdq" and rows["trt_fp16"]["source_artifact"] == "onnx_fp32"
    assert rows["trt_int8"]["precision"] == "int8" and rows["trt_int8"]["format"] == "tensorrt"
    assert any("UNCALIBRATED" in n for n in rows["trt_int8_uncalibrated"]["notes"])
    for r in rows.values():
        assert "balanced_accuracy" in r["metrics"] and r["per_image"]["ids"] == b.eval.ids
        assert "CUDA events" in r["latency"]["timer"] and r["placement"]["by_precision"]
        assert r["provider"].startswith("TensorRT") and r["engine"]["gpu"] == "FAKE H200"
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 3
    # the stand-in engine is the ONNX file run by ORT: the buffers must carry the same outputs through
    from device_bench.bundle import artifact_input
    from device_bench.runners.onnxruntime_runner import Runner as OrtRunner

    a = next(x for x in b.artifacts if x["name"] == "onnx_fp32")
    x = artifact_input(a, b.eval.images, b.manifest["preprocessing"])
    ort = OrtRunner(str(qdq_bundle / "model.onnx"))
    logits = np.concatenate([ort(x[i:i + 1]) for i in range(len(x))])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(rows["trt_fp16"]["per_image"]["probs"]), probs, atol=1e-5)


def test_device_bench_skips_tensorrt_without_cuda_python(qdq_bundle, monkeypatch, tmp_path):
    from device_bench import bench
    from device_bench import bundle as bundle_io

    trt = fake_tensorrt(FakeCudaRuntime())
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    shutil.copytree(qdq_bundle, tmp_path / "b")
    config = bench.DeviceBenchConfig(threads=[1], runtimes=["tensorrt"], trt_precisions=["fp16"], quiet=True, n_boot=10)
    res = bench.run(bundle_io.load(tmp_path / "b"), config)
    assert [(r["status"], r["runtime"]) for r in res.rows] == [("skipped", "tensorrt")]
    assert "cuda-python is not installed" in res.rows[0]["reason"]


def test_trtexec_int8_row_says_uncalibrated_unless_built_from_the_qdq_file():
    from device_bench.tensorrt import calibration_note

    kind, note = calibration_note(_art("onnx_fp32", "fp32"))
    assert kind == "none" and note.startswith("UNCALIBRATED") and "int8_qdq" in note
    kind, note = calibration_note(_art("onnx_int8_qdq", "int8_qdq"))
    assert kind == "qdq" and "calibrated scales" in note

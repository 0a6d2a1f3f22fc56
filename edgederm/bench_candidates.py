"""What ``edgederm bench`` measures from an export folder: the PyTorch original (CPU, and CUDA when
present), every artifact the manifest records, and the ONNX file again on ONNX Runtime's GPU
providers. Each is a ``Candidate`` (``edgederm.candidates``); the peer paths live in
``edgederm.peer_onnx`` and ``edgederm.peer_executorch``.
"""

from __future__ import annotations

import copy
from pathlib import Path

from device_bench.runners import open_runner
from edgederm.candidates import Candidate
from edgederm.manifest import Artifact, Manifest
from edgederm.tasks import task_of
from edgederm.verify import artifact_input, to_reference_layout

ORT_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def torch_candidate(model, manifest: Manifest, stats: dict, device: str = "cpu", precision: str = "fp32",
                    compiled: bool = False) -> Candidate:
    import torch

    dev = torch.device(device)
    opened = {}  # a GPU copy ignores thread counts: open it once (and compile it once)

    def open_(threads):
        if device == "cpu":
            torch.set_num_threads(threads)
        elif "fn" in opened:
            return opened["fn"]
        run = _torch_runner(model, dev, precision, compiled)
        if device != "cpu":
            opened["fn"] = run
        return run

    name = f"pytorch_{device.split(':')[0]}_{precision}" + ("_compiled" if compiled else "")
    runtime = f"torch {torch.__version__}" + (" (torch.compile)" if compiled else "")
    provider = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "eager CPU"
    row = {"artifact": name, "format": "torch", "precision": precision, "role": "original", "runtime": runtime,
           "provider": provider, "size_bytes": stats.get("checkpoint_bytes"), "params": stats.get("params"),
           "macs": stats.get("macs"), "status": "ok"}
    if dev.type == "cuda":  # what a GPU figure includes, so nobody compares it with kernel-only timings
        row["notes"] = ["end to end per call: host-to-GPU copy, forward, GPU-to-host copy, synchronised"]
    prep = manifest.preprocessing
    # a compiled copy scores at batch 1, the shape it is timed at: every new batch size is another compile
    return Candidate(row, open_, lambda u8: prep.normalize(u8), static_batch=False, accuracy_batch=1 if compiled else 32)


def _torch_runner(model, dev, precision: str, compiled: bool):
    """fn(x: float32 NCHW numpy) -> float32 numpy outputs, on its own copy of ``model`` on ``dev``."""
    import torch

    # each candidate its own copy: .to() and .half() work in place; NHWC suits cuDNN's fp16 kernels too
    m = copy.deepcopy(model).to(dev).eval().to(memory_format=torch.channels_last)
    if precision == "fp16":
        m = m.half()
    if compiled:  # CUDA graphs: at batch 1 a small CNN is bound by kernel launches
        m = torch.compile(m, mode="reduce-overhead" if dev.type == "cuda" else "default")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run(x):
        with torch.inference_mode():
            t = torch.from_numpy(x).to(dev)
            t = t.half() if precision == "fp16" else t
            y = m(t.contiguous(memory_format=torch.channels_last)).float()
            sync()
            return y.cpu().numpy()
    return run


def artifact_candidate(artifact: Artifact, folder: Path, manifest: Manifest, stats: dict,
                       provider: str | None = None) -> Candidate:
    path = manifest.artifact_file(folder, artifact)
    options = {"providers": [provider]} if provider else {}

    def open_(threads):
        return open_runner(path, artifact.format, threads=threads, **options)

    row = {"artifact": artifact.name, "format": artifact.format, "precision": artifact.precision, "role": "artifact",
           "path": artifact.path, "sha256": artifact.sha256, "size_bytes": artifact.size_bytes,
           "params": stats.get("params"), "macs": stats.get("macs"), "status": "ok",
           "verify": (artifact.verify or {}).get("status")}
    return Candidate(row, open_, lambda u8: artifact_input(artifact, u8, manifest),
                     lambda y: to_reference_layout(artifact, y, manifest.task),
                     outputs_prob=artifact.format == "coreml" and task_of(manifest.task).has_class_labels,
                     static_batch=artifact.inputs[0].shape[0] == 1)


def gpu_targets(cuda_available: bool, ort_providers: list[str], mode: str) -> list[tuple[str, str, bool]]:
    """Which GPU rows to measure: (runtime, precision or provider, compiled). Empty without a GPU."""
    if mode == "off":
        return []
    rows = []
    if cuda_available:
        rows += [("torch", "fp32", False), ("torch", "fp16", False), ("torch", "fp16", True)]
    for provider in ORT_GPU_PROVIDERS:
        if provider in ort_providers:
            rows.append(("onnxruntime", provider, False))
    return rows


def gpu_candidates(model, manifest: Manifest, stats: dict, folder: Path, mode: str) -> list[Candidate]:
    """The GPU rows of ``gpu_targets`` (``mode``: auto | off | only), and a skipped row for each
    ONNX Runtime GPU provider missing on a CUDA machine, saying why rather than dropping it."""
    import torch

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    cands = []
    onnx_art = next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    cuda = torch.cuda.is_available()
    for runtime, what, compiled in gpu_targets(cuda, providers, mode):
        if runtime == "torch":
            cands.append(torch_candidate(model, manifest, stats, "cuda", what, compiled))
        elif onnx_art is not None and (folder / onnx_art.path).exists():
            cand = artifact_candidate(onnx_art, folder, manifest, stats, provider=what)
            cand.row["artifact"] = _ort_gpu_name(onnx_art.name, what)
            cands.append(cand)
        else:
            cands.append(_skipped(_ort_gpu_name("onnx_fp32", what), "onnx", "fp32",
                                  "no fp32 ONNX file in this folder to run on the GPU provider"))
    if cuda and mode != "off":
        for what in ORT_GPU_PROVIDERS:
            if what not in providers:
                cands.append(_skipped(_ort_gpu_name("onnx_fp32", what), "onnx", "fp32",
                                      f"this onnxruntime has no {what} (install onnxruntime-gpu"
                                      f"{' and TensorRT' if 'Tensorrt' in what else ''})"))
    return cands


def _ort_gpu_name(artifact: str, provider: str) -> str:
    return f"{artifact}_{provider.replace('ExecutionProvider', '').lower()}"


def _skipped(name: str, fmt: str, precision: str, reason: str) -> Candidate:
    return Candidate({"artifact": name, "format": fmt, "precision": precision, "role": "artifact",
                      "status": "skipped", "reason": reason}, None, None)

"""``edgederm bench``: accuracy versus latency for every artifact of an export folder and its original.

For each artifact, the PyTorch original (CPU, and CUDA when present) and the *peer paths* a
user would otherwise take (plain ``torch.onnx.export`` run by ONNX Runtime, fp32 and ONNX
Runtime's own default int8, ``edgederm.peer_onnx``; ExecuTorch's own XNNPACK recipe, fp32 and
PT2E int8, ``edgederm.peer_executorch``), on the real test split:

- task metrics with bootstrap 95 % CIs and the paired difference to the original
  (``edgederm.bench_scoring``);
- latency at batch 1 per thread count with the protocol of ``device_bench.timing`` (warm-up
  discarded; median, p90, min), throughput at a larger batch where the runtime takes one
  (``edgederm.bench_timing``);
- size, params, MACs, the memory that loading and running added to the process, and the
  fraction of this CPU's measured peak MAC rate the artifact reaches (``edgederm.bench_results``).

This module is the run: which candidates (``edgederm.bench_candidates``), in which order, into
one ``device_bench.results.Results``; the terminal table is ``edgederm.commands.bench``'s.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from device_bench.results import Results, ids_sha256
from edgederm.bench_candidates import artifact_candidate, gpu_candidates, torch_candidate
from edgederm.bench_results import add_speedups, write_results
from edgederm.bench_scoring import score_all, scorer
from edgederm.bench_timing import time_candidates
from edgederm.byom import original_from_manifest
from edgederm.candidates import Candidate
from edgederm.environment import environment_facts
from edgederm.errors import EdgeDermError
from edgederm.manifest import Manifest
from edgederm.models import model_stats
from edgederm.peak import peak_mac_rate
from edgederm.peer_executorch import executorch_peers
from edgederm.peer_onnx import peer_calibration, peer_candidates
from edgederm.progress import log
from edgederm.verify import verification_arrays

__all__ = ["BenchConfig", "bench", "add_speedups", "write_results", "scorer", "torch_candidate",
           "artifact_candidate"]  # what the commands, profile and the tests import from here


@dataclass
class BenchConfig:
    images: int | None = None  # None: the whole test split
    threads: tuple[int, ...] = (1, 2)
    throughput_batch: int = 8
    warmup: int = 10
    runs: int = 100
    max_seconds: float = 15.0
    n_boot: int = 1000
    peers: bool = True
    only: tuple[str, ...] = ()  # artifact names; empty = all
    rounds: int = 10  # latency: interleaved rounds over all candidates (see measure_interleaved)
    gpu: str = "auto"  # auto: CUDA rows when a GPU is present | off | only (GPU rows alone)
    peak: bool = True  # measure this CPU's peak MAC rate for the physical-limit column
    seed: int = 0


def bench(folder: str | os.PathLike, config: BenchConfig | None = None, data_root=None, checkpoint: str | None = None,
          out: str | os.PathLike | None = None, meta=None, weights=None, trust_source: bool = False) -> Results:
    """Measure every artifact in ``folder`` and the original; returns ``device_bench.results.Results``."""
    import torch

    config = config or BenchConfig()
    folder, manifest = open_export(folder, config)
    model, source = original_from_manifest(manifest, folder, checkpoint, meta, weights, trust=trust_source)
    started = time.perf_counter()
    images, targets, ids = verification_arrays(manifest, data_root, config.images or 10**9, with_ids=True)
    log(f"bench: {manifest.model['name']} on {len(images)} test images of {manifest.model.get('dataset')}")
    stats = model_facts(model, manifest, source)
    env_key, env = environment_facts()
    if config.peak:
        env["peak_gmacs"] = {str(t): peak_mac_rate(t) for t in config.threads}
    results = new_results(manifest, config, ids, env_key, env)
    per_image, score = scorer(manifest.task, targets, manifest.classes, manifest.output)
    original = torch_candidate(model, manifest, stats)
    # the peers' files live here until they are timed; a killed run's folder is swept at the next start
    with tempfile.TemporaryDirectory(prefix="edgederm-peer-") as workdir:
        cands = candidates(model, manifest, stats, folder, config, data_root, original, Path(workdir))
        scored, unmeasured = score_all(cands, original, images, config, score, per_image)
        timed, noise = time_candidates(scored, config)
    for row in timed + unmeasured:
        results.add({**row, "device": env_key})
    results.data["machine_noise"] = noise  # the probe's round-to-round spread: how far to trust small differences
    torch.set_num_threads(max(config.threads))
    results.data["seconds"] = round(time.perf_counter() - started, 1)
    add_speedups(results)
    if out is not None:
        write_results(results, Path(out))
    return results


def open_export(folder: str | os.PathLike, config: BenchConfig) -> tuple[Path, Manifest]:
    """The export folder and its manifest, refused before any slow work when it is incomplete, a file
    to measure is not the file the manifest records, or ``--only`` names an artifact it lacks."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    manifest.require_complete(folder)
    for a in manifest.artifacts:
        if config.gpu != "only" and (not config.only or a.name in config.only):
            manifest.artifact_file(folder, a)
    unknown = set(config.only) - {a.name for a in manifest.artifacts}
    if unknown:
        raise EdgeDermError(f"--only {','.join(sorted(unknown))}: no such artifact in {folder / 'manifest.json'} "
                            f"(it has {', '.join(a.name for a in manifest.artifacts)})")
    return folder, manifest


def model_facts(model, manifest: Manifest, source) -> dict:
    """params, MACs and the checkpoint's size: the original's columns, shared by every row."""
    stats = {}
    try:
        stats = model_stats(model, tuple(manifest.preprocessing.input_size))
    except Exception as e:  # an exported program may refuse the FLOP counter
        log(f"bench: could not count MACs ({type(e).__name__}); the column stays empty")
    if Path(source).exists():
        stats["checkpoint_bytes"] = Path(source).stat().st_size
    return stats


def new_results(manifest: Manifest, config: BenchConfig, ids: list[str], env_key: str, env: dict) -> Results:
    """The results' header: this machine, the model and exactly which test images were used."""
    model_keys = ("name", "architecture", "task", "classes", "dataset", "checkpoint_sha256")
    selection = f"class-stratified sample of {config.images}, seed 0" if config.images else "whole split"
    return Results(environments={env_key: env}, source="edgederm bench",
                   model={k: manifest.model.get(k) for k in model_keys},
                   data={"split": "test", "images": len(ids), "selection": selection,
                         "dataset": manifest.model.get("dataset"), "ids_sha256": ids_sha256(ids)})


def candidates(model, manifest: Manifest, stats: dict, folder: Path, config: BenchConfig, data_root,
               original: Candidate, workdir: Path) -> list[Candidate]:
    """What to measure, in order: the CPU original first (the deltas are against it), the GPU rows,
    the manifest's artifacts (``config.only`` of them), then the peer paths built in ``workdir``."""
    cands = [] if config.gpu == "only" else [original]
    gpu = gpu_candidates(model, manifest, stats, folder, config.gpu)
    if config.gpu == "only" and not any(c.open for c in gpu):
        raise EdgeDermError("--gpu only: no CUDA device (torch) and no CUDA/TensorRT provider (onnxruntime) here; "
                            "run it on the GPU machine or use --gpu auto")
    cands += gpu
    if config.gpu == "only":
        return cands
    cands += [artifact_candidate(a, folder, manifest, stats) for a in manifest.artifacts
              if not config.only or a.name in config.only]
    if config.peers:
        calibration = peer_calibration(manifest, data_root)
        cands += peer_candidates(model, manifest, stats, workdir, calibration)
        cands += executorch_peers(model, manifest, stats, workdir, calibration)
    return cands

"""Where the milliseconds go: per-operator-type latency of every artifact of an export folder.

For each artifact (and the PyTorch original) the runtime's own profiler times every executed node
(``edgederm.profilers``), the nodes are grouped by operator type with their MACs, bytes, share of the
total and place against the machine's roofline (measured in the same run), and the profile's total is
set beside the latency of the same artifact timed the way ``edgederm bench`` times it, in the same
process (a profile that does not add up to the measured time explains less than it seems to).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError

EXPLAINED_TOLERANCE = 0.10  # issue 18: the profile's total within 10 % of the bench latency


@dataclass
class ProfileConfig:
    threads: int = 1
    runs: int = 20
    warmup: int = 5
    rounds: int = 5  # profiled blocks interleaved with plain timing blocks
    artifacts: tuple[str, ...] = ()  # empty: every artifact
    original: bool = True
    roofline: bool = True
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for name in ("threads", "runs", "rounds"):
            if getattr(self, name) < 1:
                raise EdgeDermError(f"--{name} {getattr(self, name)} is too small: pass 1 or more")
        if self.warmup < 0:
            raise EdgeDermError(f"--warmup {self.warmup} is negative: pass 0 or more")


def op_rows(nodes: list[dict], roof: dict | None) -> list[dict]:
    """Nodes grouped by operator type: count, ms, share, MACs, bytes, GMAC/s and fraction of the roofline bound."""
    from edgederm.profilers.roofline import bound

    groups: dict[str, dict] = {}
    for n in nodes:
        g = groups.setdefault(n["op"], {"op": n["op"], "nodes": 0, "ms": None, "macs": 0, "bytes": 0, "kind": n["kind"],
                                        "providers": set()})
        g["nodes"] += n.get("count", 1)
        g["ms"] = None if n["ms"] is None else (g["ms"] or 0.0) + n["ms"]
        g["macs"] = None if g["macs"] is None or n["macs"] is None else g["macs"] + n["macs"]
        g["bytes"] = None if g["bytes"] is None or n.get("bytes") is None else g["bytes"] + n["bytes"]
        g["providers"].add(n.get("provider", "?"))
    total = sum(g["ms"] for g in groups.values() if g["ms"] is not None) or None
    rows = []
    for g in groups.values():
        rate = g["macs"] / (g["ms"] * 1e-3) / 1e9 if g["macs"] and g["ms"] else None
        roof_bound = bound(g["macs"], g["bytes"], g["kind"] == "int8", roof) if roof else None
        rows.append({**g, "providers": sorted(g["providers"]), "share": g["ms"] / total if total and g["ms"] is not None else None,
                     "gmacs_per_s": rate, "roof_bound_gmacs": roof_bound,
                     "roof_fraction": rate / roof_bound if rate and roof_bound else None})
    return sorted(rows, key=lambda r: (-(r["ms"] or 0), -(r["macs"] or 0), r["op"]))


def summarize(entry: dict, prof: dict, measured: dict | None, roof: dict | None) -> dict:
    ops = op_rows(prof["nodes"], roof)
    timed = [r["ms"] for r in ops if r["ms"] is not None]
    total = sum(timed) if timed and len(timed) == len(ops) else None
    measured_ms = measured["median_ms"] if measured else None
    entry = {**entry, "measured": measured}
    macs = sum(r["macs"] or 0 for r in ops)
    out = {**entry, "runtime": prof["runtime"], "provider": prof.get("provider"), "status": prof["status"],
           "timing": prof["timing"], "profile_ms": total, "measured_ms": measured_ms,
           "explained": total / measured_ms if total and measured_ms else None,
           "profile_wall_ms": prof.get("profile_wall_ms"), "macs": macs or None, "graph_macs": prof.get("graph_macs"),
           "coverage": prof["coverage"], "ops": ops}
    model_macs = out["graph_macs"] or out["macs"]
    integer = str(entry.get("precision", "")).startswith(("int8", "w8a8"))
    peak = (roof or {}).get("int8_gmacs" if integer else "fp32_gmacs")
    out["peak_fraction"] = model_macs / (measured_ms * 1e-3) / (peak * 1e9) if model_macs and measured_ms and peak else None
    if out["explained"] is not None:
        out["within_tolerance"] = abs(out["explained"] - 1) <= EXPLAINED_TOLERANCE
    return out


def _interleaved(profiler, target, fn, x, config: ProfileConfig) -> tuple[dict, dict]:
    """Run ``profiler`` on ``target`` in ``config.rounds`` blocks and, before each block, time the plain
    bench callable ``fn`` (no profiler) for as many runs: both see the same load from elsewhere, so the
    profile's total and the measured latency can be compared on a shared machine."""
    from device_bench.timing import summarize

    times: list[float] = []

    def between():
        for _ in range(2):  # settle: the other session's caches and threads
            fn(x)
        for _ in range(max(1, config.runs // config.rounds)):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1e3)

    prof = profiler(target, x, threads=config.threads, runs=config.runs, warmup=config.warmup,
                    rounds=config.rounds, between=between)
    if not times:  # a profiler without rounds (LiteRT: no per-op timer): the bench protocol once
        for _ in range(config.warmup):
            fn(x)
        between()
    return prof, summarize(times, config.warmup)


def profile_artifact(artifact, folder: Path, manifest, u8: np.ndarray, config: ProfileConfig):
    """(entry, profiler output, measured latency), or a skipped entry where this machine cannot run it."""
    from edgederm.bench import artifact_candidate
    from edgederm.profilers import PROFILERS

    entry = {"artifact": artifact.name, "format": artifact.format, "precision": artifact.precision,
             "threads": config.threads, "verify": (artifact.verify or {}).get("status")}
    if artifact.format not in PROFILERS:
        return {**entry, "status": "skipped", "reason": f"no per-operator profiler for {artifact.format} "
                "(Core ML prediction needs macOS; profile it in Xcode Instruments)"}
    path = manifest.artifact_file(folder, artifact)  # inside the folder, sha256 re-proven
    cand = artifact_candidate(artifact, folder, manifest, {})
    x = cand.make_input(u8)
    try:
        fn = cand.open(config.threads)
    except Exception as e:  # noqa: BLE001 - a runtime that cannot open it here is a skipped row, not a crash
        return {**entry, "status": "skipped", "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return (entry, *_interleaved(PROFILERS.get(artifact.format), path, fn, x, config))


def profile_original(manifest, folder: Path, u8: np.ndarray, config: ProfileConfig, checkpoint=None):
    from edgederm.bench import torch_candidate
    from edgederm.byom import original_from_manifest
    from edgederm.profilers import PROFILERS

    entry = {"artifact": "pytorch_cpu_fp32", "format": "torch", "precision": "fp32", "threads": config.threads,
             "verify": None, "role": "original"}
    model, _ = original_from_manifest(manifest, folder, checkpoint)  # its sha256 proven against the manifest
    cand = torch_candidate(model, manifest, {})
    fn, x = cand.open(config.threads), cand.make_input(u8)
    return (entry, *_interleaved(PROFILERS.get("torch"), fn, fn, x, config))


def profile_folder(folder, config: ProfileConfig | None = None, checkpoint: str | None = None) -> dict:
    """The whole profile of an export folder: environment, roofline and one entry per artifact."""
    from edgederm.environment import environment_facts
    from edgederm.manifest import Manifest

    config = config or ProfileConfig()
    config.validate()
    folder = Path(folder)
    folder = folder.parent if folder.name == "manifest.json" else folder
    if not (folder / "manifest.json").is_file():
        raise EdgeDermError(f"{folder} holds no manifest.json: pass an export folder (edgederm export ... --out DIR)")
    manifest = Manifest.load(folder / "manifest.json")
    manifest.require_complete(folder)
    names = [a.name for a in manifest.artifacts]
    unknown = [a for a in config.artifacts if a not in names]
    if unknown:
        raise EdgeDermError(f"--artifacts {','.join(unknown)}: not in {folder}/manifest.json (has {', '.join(names)})")
    device, facts = environment_facts()
    h, w = manifest.preprocessing.input_size
    u8 = np.random.default_rng(config.seed).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    roof = None
    if config.roofline:
        from edgederm.profilers.roofline import best_of, measure

        roof = measure(config.threads)
    raw = [profile_artifact(a, folder, manifest, u8, config) for a in manifest.artifacts
           if not config.artifacts or a.name in config.artifacts]
    if config.original:
        try:
            raw.insert(0, profile_original(manifest, folder, u8, config, checkpoint))
        except Exception as e:  # noqa: BLE001 - the artifacts' profiles stand without it; say why it is missing
            why = str(e).splitlines()[0] if str(e) else ""
            raw.insert(0, {"artifact": "pytorch_cpu_fp32", "format": "torch", "precision": "fp32", "role": "original",
                           "threads": config.threads, "status": "skipped",
                           "reason": f"original not profiled ({type(e).__name__}: {why}); --checkpoint names it, "
                                     "--no-original skips it"})
    if roof:  # the peaks again at the end: on a shared machine the best of the two is nearer the hardware
        roof = best_of(roof, measure(config.threads))
    entries = [r if isinstance(r, dict) else summarize(*r, roof) for r in raw]
    return {"schema": "edgederm.profile", "version": 1, "folder": str(folder),
            "model": {"name": manifest.model.get("name"), "task": manifest.task},
            "device": device, "environment": {k: facts.get(k) for k in ("cpu_model", "cpu_count", "cpu_isa", "runtimes")},
            "threads": config.threads, "runs": config.runs, "roofline": roof, "artifacts": entries,
            "date": __import__("time").strftime("%Y-%m-%d")}


def write_json(profile: dict, target) -> Path:
    import json

    from edgederm.paths import atomic_path

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(target)
    tmp.write_text(json.dumps(profile, indent=1, allow_nan=False, default=_jsonable) + "\n")
    os.replace(tmp, target)
    return target


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, set):
        return sorted(o)
    raise TypeError(type(o).__name__)

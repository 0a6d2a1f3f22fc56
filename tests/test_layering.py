"""Imports go one way. Read from the source (AST, function-local imports included): no import cycle
among the project's modules; device_bench (the bottom: numpy + one runtime on a device) imports
nothing of edgederm, converters or quantization; every module has a layer in ``LAYERS`` and imports
only from its own layer or below; no module imports another's private (``_name``) names."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("edgederm", "converters", "quantization", "device_bench")


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its body (``from pkg import mod`` counts as pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_device_bench_stands_alone():
    g = graph()
    upward = {m: sorted(t for t in deps if not t.startswith("device_bench"))
              for m, deps in g.items() if m.startswith("device_bench")}
    assert {m: d for m, d in upward.items() if d} == {}


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# --- layers: imports go one way, downward ------------------------------------------------------
# The one map of where every module sits. "pkg.*" places pkg and everything under it; any other
# key places exactly that module. A module the map does not place fails test_every_module_is_placed,
# so a new module gets a layer when it is written (docs/architecture.md draws the same picture).
BOTTOM, CORE, CONVERTERS, STAGES, TOP = 0, 1, 2, 3, 4
LAYERS: dict[str, int] = {
    # bottom: numpy + one runtime, runs on the device too
    "device_bench.*": BOTTOM,
    # core: records, data, models, the ways a model comes in, task specs, metrics
    "edgederm": CORE, "edgederm.errors": CORE, "edgederm.registry": CORE, "edgederm.paths": CORE,
    "edgederm.progress": CORE, "edgederm.table": CORE, "edgederm.preprocessing": CORE, "edgederm.tasks.*": CORE,
    "edgederm.metrics": CORE, "edgederm.tensors": CORE, "edgederm.manifest": CORE, "edgederm.data.*": CORE,
    "edgederm.models.*": CORE, "edgederm.checkpoint": CORE, "edgederm.byom": CORE, "edgederm.untrusted": CORE,
    "edgederm.adapters": CORE, "edgederm.model_sources": CORE, "edgederm.onnx_source": CORE,
    "edgederm.environment": CORE, "edgederm.peak": CORE,
    # converters: one module per route
    "converters.*": CONVERTERS,
    # stages: verify < export; evaluate < train < prune; quantization; bench; profile; site shift
    "edgederm.verify": STAGES, "edgederm.export": STAGES, "edgederm.evaluate": STAGES, "edgederm.train": STAGES,
    "edgederm.recipes": STAGES, "edgederm.prune.*": STAGES, "quantization.*": STAGES, "edgederm.bench": STAGES,
    "edgederm.candidates": STAGES, "edgederm.bench_candidates": STAGES, "edgederm.bench_results": STAGES,
    "edgederm.bench_scoring": STAGES, "edgederm.bench_timing": STAGES, "edgederm.peer_onnx": STAGES,
    "edgederm.peer_executorch": STAGES, "edgederm.profile": STAGES,
    "edgederm.profilers.*": STAGES, "edgederm.shift": STAGES, "edgederm.recalibrate": STAGES,
    # top: what users run and read
    "edgederm.__main__": TOP, "edgederm.cli": TOP, "edgederm.commands.*": TOP, "edgederm.report": TOP,
    "edgederm.pareto": TOP, "edgederm.profile_report": TOP, "edgederm.pipeline.*": TOP, "edgederm.demo": TOP,
    "edgederm.bundle": TOP, "edgederm.embed.*": TOP, "edgederm.device_android": TOP, "edgederm.conformance": TOP,
    "edgederm.compat": TOP,
}


def layer_of(module: str) -> int | None:
    """The module's layer: an exact key, else the longest "pkg.*" key above it; None where unplaced."""
    if module in LAYERS:
        return LAYERS[module]
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n]) + ".*"
        if key in LAYERS:
            return LAYERS[key]
    return None


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    """'a (layer i) imports b (layer j > i)' for every import that goes up."""
    return sorted(f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
                  for m, deps in g.items() for t in deps
                  if layer_of(m) is not None and layer_of(t) is not None and layer_of(t) > layer_of(m))


def test_every_module_is_placed():
    unplaced = sorted(m for m in modules() if layer_of(m) is None)
    assert not unplaced, f"modules without a layer (add them to LAYERS in tests/test_layering.py): {unplaced}"


def test_no_map_entry_is_stale():
    mods = set(modules())
    stale = sorted(k for k in LAYERS if not (k[:-2] in mods or any(m.startswith(k[:-1]) for m in mods)
                                             if k.endswith(".*") else k in mods))
    assert not stale, f"LAYERS entries that name no module (remove or rename them): {stale}"


def test_imports_only_go_down():
    up = upward_imports(graph())
    assert not up, "imports from a lower layer to a higher one:\n  " + "\n  ".join(up)


def test_the_layer_check_names_the_pair():
    assert layer_of("converters.torch2onnx") == CONVERTERS and layer_of("edgederm.commands.run") == TOP
    assert layer_of("edgederm.nowhere") is None
    g = {"edgederm.manifest": {"edgederm.export", "edgederm.errors"}, "edgederm.export": {"edgederm.manifest"}}
    assert upward_imports(g) == ["edgederm.manifest (layer 1) imports edgederm.export (layer 3)"]


# --- no private names across modules ----------------------------------------------------------

def private_imports(path: Path, name: str, known: set[str]) -> list[str]:
    """'module imports _name from other' for each ``from other import _name`` of a project module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
        source = base
        while source and source not in known:
            source = source.rpartition(".")[0]
        if not source or base == name:
            continue  # a third-party module, or the module itself
        out += [f"{name} imports {a.name} from {base} (line {node.lineno})" for a in node.names
                if a.name.startswith("_") and not (a.name.startswith("__") and a.name.endswith("__"))]
    return out


def test_no_private_name_is_imported_across_modules():
    mods = modules()
    found = sorted(p for name, path in mods.items() for p in private_imports(path, name, set(mods)))
    assert not found, "private names imported across modules (make them public or move the code):\n  " + \
        "\n  ".join(found)


def test_the_private_check_sees_one(tmp_path):
    f = tmp_path / "b.py"
    f.write_text("from edgederm.data.arrays import _open_image, load_arrays\nfrom torch._C import _x\n"
                 "from . import __version__\n")
    assert private_imports(f, "edgederm.b", {"edgederm", "edgederm.data.arrays", "edgederm.b"}) == \
        ["edgederm.b imports _open_image from edgederm.data.arrays (line 1)"]

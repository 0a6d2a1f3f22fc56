"""Every entry of every registry has a test (like optimum's ``test_all_models_tested``, generalised).

The registries are found in the source: each module-level ``NAME = Registry("kind")`` of the
project's packages, plus ``device_bench.runners.RUNNERS`` (a plain dict: the bottom layer imports
nothing of edgederm). ``TESTED[kind]`` says, per entry, which test exercises it:

- ``"tests/test_x.py::test_name"``: that test function exists;
- ``"tests/test_x.py::test_name[param]"``: it exists and ``param`` is a string literal of that file
  (one of its parametrisations);
- a ``"*"`` row instead of per-entry rows: the test exists and its file iterates the whole
  registry (``ATTR.names()``), so every entry, present and future, runs through it.

A registry without a table, an entry without a row, a row for an entry no longer registered and
a row naming a test that is not there each fail here, with what to add.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("edgederm", "converters", "quantization", "device_bench")
ALL = "*"

TESTED: dict[str, dict[str, str]] = {
    "profiler": {
        "onnx": "tests/test_profile.py::test_ort_profile_float_graph",
        "tflite": "tests/test_profile.py::test_litert_delegation_and_coverage_counts",
        "torch": "tests/test_profile.py::test_torch_profile_counts_conv_macs",
    },
    "task": {ALL: "tests/test_tasks.py::test_parity_of_an_artifact_with_itself_and_a_worse_one"},
    "importance": {
        "l2": "tests/test_prune.py::test_macs_budget_is_reached",  # the default importance
        "l1": "tests/test_prune.py::test_other_importances_prune[l1]",
        "taylor": "tests/test_prune.py::test_other_importances_prune[taylor]",
        "bn_scale": "tests/test_prune.py::test_other_importances_prune[bn_scale]",
    },
    "model": {ALL: "tests/test_models.py::test_model_builds_and_runs_at_default_size"},
    "data layout": {
        "derm7": "tests/test_data.py::test_derm7_with_split_column",
        "lesionseg": "tests/test_data.py::test_lesionseg_reader",
        "ham10000": "tests/test_data.py::test_ham10000_reader_finds_images_in_both_parts",
        "isic_task1": "tests/test_data.py::test_isic_task1_reader_pairs_images_with_masks",
        "folder": "tests/test_data.py::test_folder_reader_plain",
    },
    "recipe": {ALL: "tests/test_recipes.py::test_recipe_is_well_formed"},
    "embed platform": {
        "android": "tests/test_embed.py::test_android_kotlin_encodes_the_manifest",
        "ios": "tests/test_embed.py::test_ios_swift_encodes_the_manifest",
        "web": "tests/test_embed.py::test_labels_and_sidecar_round_trip[web]",
        "android-executorch": "tests/test_executorch.py::test_android_executorch_kit_encodes_the_manifest",
        "ios-executorch": "tests/test_embed.py::test_ios_executorch_swift_encodes_the_manifest",
    },
    "conformance architecture": {ALL: "tests/test_conformance.py::test_conformance_suite_meets_its_target"},
    "model source form": {
        "onnx": "tests/test_sources.py::test_onnx_source_is_adapted_in_the_graph_as_in_pytorch",
        "timm": "tests/test_sources.py::test_timm_source_loads_weights_exactly",
        "torchvision": "tests/test_sources.py::test_torchvision_segmenter_with_dict_two_class_output",
    },
    "conversion route": {
        "torch2onnx": "tests/test_export.py::test_onnx_and_coreml_classifier",
        "torch2coreml": "tests/test_export.py::test_onnx_and_coreml_classifier",
        "onnx2tflite": "tests/test_export.py::test_tflite_fp32_fp16",
        "torch2executorch": "tests/test_executorch.py::test_export_writes_a_verified_pte_with_delegation",
        "onnx2onnx": "tests/test_sources.py::test_onnx_source_exports_onnx_and_refuses_coreml_with_the_reason",
    },
    "format": {
        "onnx": "tests/test_export.py::test_onnx_and_coreml_classifier",
        "coreml": "tests/test_export.py::test_onnx_and_coreml_classifier",
        "tflite": "tests/test_export.py::test_tflite_fp32_fp16",
        "executorch": "tests/test_executorch.py::test_export_writes_a_verified_pte_with_delegation",
        "executorch_coreml": "tests/test_executorch.py::test_coreml_delegate_pte_is_written_with_coverage_and_skipped_here",
    },
    "quantization scheme": {
        **{k: f"tests/test_quantization.py::test_fast_scheme_on_classifier[{k}]" for k in (
            "int8:onnx", "int8_nncf:onnx", "int8_qdq:onnx", "fp16:coreml", "w8:coreml", "palette6:coreml",
            "palette4:coreml")},
        **{k: f"tests/test_quantization.py::test_slow_scheme_on_classifier[{k}]" for k in (
            "fp16:tflite", "dynamic:tflite", "int8:tflite", "int8_floatio:tflite", "int16x8:tflite", "w8a8:coreml")},
        "int8:coreml": "tests/test_quantization.py::test_registry_records",  # the w8:coreml artifact, asserted there
        "int8:executorch": "tests/test_executorch.py::test_int8_scheme_quantizes_with_the_shared_calibration",
    },
    "device_bench runner": {
        "onnxruntime": "tests/test_device_bench.py::test_device_run_without_torch_matches_edgederm",
        "litert": "tests/test_device_bench.py::test_device_run_without_torch_matches_edgederm",
        "coreml": "tests/test_coreml_runner.py::test_runner_reads_probabilities_in_class_order",
        "executorch": "tests/test_executorch.py::test_android_bundle_carries_the_pte_and_device_bench_runs_it",
        "tensorrt": "tests/test_tensorrt_runner.py::test_runner_builds_caches_and_times_with_cuda_events",
    },
}


# --- finding the registries -------------------------------------------------------------------

def registry_sites() -> list[tuple[str, str, str]]:
    """(module, attribute, kind) of every module-level ``ATTR = Registry("kind")`` in the project's packages."""
    sites = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            for node in ast.parse(path.read_text()).body:
                target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
                call = getattr(node, "value", None)
                if (isinstance(target, ast.Name) and isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                        and call.func.id == "Registry" and call.args and isinstance(call.args[0], ast.Constant)):
                    sites.append((module, target.id, call.args[0].value))
    return sites


@cache
def registries() -> dict[str, tuple[str, list[str]]]:
    """kind -> (attribute, registered names). The packages above each registry's module are imported
    too: their ``__init__`` is where the built-in entries register themselves."""
    out = {}
    for module, attr, kind in registry_sites():
        parts = module.split(".")
        for n in range(1, len(parts) + 1):
            importlib.import_module(".".join(parts[:n]))
        out[kind] = (attr, getattr(importlib.import_module(module), attr).names())
    from device_bench.runners import RUNNERS

    out["device_bench runner"] = ("RUNNERS", sorted(RUNNERS))
    return out


# --- reading the tests ------------------------------------------------------------------------

@cache
def read_test_file(relative: str) -> tuple[set[str], set[str], str]:
    """(test function names, string literals, source text) of a test file; empty when it is missing."""
    path = REPO / relative
    if not path.is_file():
        return set(), set(), ""
    text = path.read_text()
    tree = ast.parse(text)
    functions = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return functions, strings, text


def row_problem(kind: str, entry: str, node: str) -> str | None:
    """Why ``node`` does not prove a test of ``entry`` (None when it does)."""
    relative, _, test = node.partition("::")
    name, _, param = test.partition("[")
    functions, strings, text = read_test_file(relative)
    if name not in functions:
        return f"{kind} {entry!r}: {node} names no test function (is {relative} there, is {name} in it?)"
    if param and param.rstrip("]") not in strings:
        return f"{kind} {entry!r}: {node}: {param.rstrip(']')!r} is no parametrisation in {relative}"
    attr = registries()[kind][0]
    if entry == ALL and f"{attr}.names()" not in text:
        return f"{kind}: {relative} does not iterate {attr}.names(), so a '*' row does not cover every entry"
    return None


# --- the checks -------------------------------------------------------------------------------

def test_every_registry_has_a_table():
    missing = sorted(set(registries()) - set(TESTED))
    stale = sorted(set(TESTED) - set(registries()))
    assert not missing, f"registries without a TESTED table in tests/test_registries.py: {missing}"
    assert not stale, f"TESTED tables for registries that no longer exist: {stale}"


@pytest.mark.parametrize("kind", sorted(TESTED))
def test_every_entry_has_a_test(kind):
    if kind not in registries():
        pytest.fail(f"no registry of kind {kind!r} (see test_every_registry_has_a_table)")
    names, rows = registries()[kind][1], TESTED[kind]
    if ALL not in rows:
        untested = sorted(set(names) - set(rows))
        stale = sorted(set(rows) - set(names))
        assert not untested, f"{kind} entries without a test (write one, add its row to TESTED[{kind!r}]): {untested}"
        assert not stale, f"TESTED[{kind!r}] rows for entries no longer registered: {stale}"
    problems = [p for entry, node in sorted(rows.items()) if (p := row_problem(kind, entry, node))]
    assert not problems, "\n".join(problems)


def test_the_checker_finds_the_registries_and_refuses_a_bad_row():
    kinds = {kind for _, _, kind in registry_sites()}
    assert {"model", "format", "conversion route", "quantization scheme", "task"} <= kinds
    assert row_problem("format", "onnx", "tests/test_export.py::test_no_such_test")
    assert row_problem("format", "onnx", "tests/test_nowhere.py::test_x")
    assert row_problem("importance", "l1", "tests/test_prune.py::test_other_importances_prune[l7]")
    assert row_problem("format", ALL, "tests/test_export.py::test_onnx_and_coreml_classifier")
    assert row_problem("model", ALL, TESTED["model"][ALL]) is None

"""Markers say what a test needs, so ``-m "not tflite"`` (or coreml, browser, realdata) leaves out exactly
the tests a machine cannot run. pyproject declares them and ``--strict-markers`` refuses any other.

Read from the source (AST): a test needs a marker when it, a fixture it takes (from its module or
conftest.py, followed through the fixtures they take) or a module-level helper or constant it uses
shows one of that marker's signs below. The test must then carry the marker: a decorator, a
``pytest.param(..., marks=...)``, a class decorator or the module's ``pytestmark``. The signs are
deliberately plain (what is imported, what fixture is taken, which format string is passed), so
a test that only names a format without converting to it may be listed in ``NOT_NEEDED`` with why.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TESTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Signs:
    modules: tuple[str, ...] = ()    # an import of one of these (or a submodule)
    fixtures: tuple[str, ...] = ()   # a fixture taken, directly or through other fixtures
    names: tuple[str, ...] = ()      # a name used (a constant or function of the test code)
    strings: str = ""                # a regular expression any string constant matches
    converts_to: str = ""            # a format passed to a call that converts to it or runs it (CONVERTING)


# Calls whose format arguments make or run an artifact of that format; on a command line, the
# value after one of FORMAT_FLAGS. A format named elsewhere (a dict of expected rows, a helper
# that writes a stand-in file) needs nothing installed.
CONVERTING = ("export", "quantize", "run_scheme", "open_runner", "convert")
FORMAT_FLAGS = ("--to", "--format", "--scheme", "--bench")
SCRIPT_IMPORT = r"(?m)^\s*(import|from) ({})\b"  # a script run in a child Python process
SIGNS: dict[str, Signs] = {
    "realdata": Signs(fixtures=("real_data_root",), names=("REAL_DATA", "find_dataset"), strings=r"shared/data"),
    "browser": Signs(modules=("playwright",), names=("CHROMIUM",), strings=r"(?i)chromium|playwright"),
    "tflite": Signs(modules=("ai_edge_litert", "tflite_runtime", "onnx2tf", "tensorflow", "converters.onnx2tflite",
                             "quantization.tflite", "quantization.tflite_debug"), names=("diagnose_tflite",),
                    strings=SCRIPT_IMPORT.format("tensorflow|onnx2tf|ai_edge_litert|tflite_runtime"), converts_to="tflite"),
    "coreml": Signs(modules=("coremltools", "converters.torch2coreml", "quantization.coreml"),
                    strings=SCRIPT_IMPORT.format("coremltools"), converts_to="coreml"),
}

# ("tests/test_x.py::test_name", marker): why it shows the marker's sign without needing what it stands for.
NOT_NEEDED: dict[tuple[str, str], str] = {
    ("tests/test_bad_inputs.py::test_bad_input", "tflite"): "its one --to tflite case is refused by a flag check first",
    ("tests/test_bad_inputs.py::test_there_are_enough_cases", "tflite"): "counts the cases, runs none",
    ("tests/test_coreml_runner.py::test_off_macos_the_runner_is_unavailable_with_the_reason", "coreml"):
        "the platform check comes before coremltools",
    ("tests/test_coreml_runner.py::test_runner_reads_probabilities_in_class_order", "coreml"): "a stand-in coremltools",
    ("tests/test_sources.py::test_onnx_source_exports_onnx_and_refuses_coreml_with_the_reason", "coreml"):
        "Core ML is refused (no ONNX frontend) before coremltools is called",
    ("tests/test_tfnames.py::test_a_flex_op_fails_in_one_line_naming_the_operator", "tflite"):
        "LiteRT's refusal is a stand-in",
    ("tests/test_tfnames.py::test_the_private_onnx2tf_copy_is_named_safely_and_erf_is_approximated", "tflite"):
        "the onnx2tf child is a stand-in; no TensorFlow runs",
    ("tests/test_quantization.py::test_relu6_rewrite_is_exact", "tflite"):
        "the ONNX rewrite for TFLite int8, run in ONNX Runtime",
}


# --- reading a test module ------------------------------------------------------------------

@dataclass
class Module:
    path: Path
    functions: dict[str, ast.FunctionDef]   # module-level functions (tests, fixtures, helpers), class methods too
    assigned: dict[str, ast.AST]            # module-level constants
    marks: set[str]                         # the module's pytestmark


def marks_in(node: ast.AST) -> set[str]:
    """Marker names written as ``pytest.mark.NAME`` anywhere below ``node``."""
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
            and n.value.attr == "mark" and isinstance(n.value.value, ast.Name) and n.value.value.id == "pytest"}


@cache
def read_module(path: Path) -> Module:
    tree = ast.parse(path.read_text())
    functions, assigned, marks = {}, {}, set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            functions.update({f"{node.name}.{m.name}": m for m in node.body if isinstance(m, ast.FunctionDef)})
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    assigned[target.id] = node
                    if target.id == "pytestmark":
                        marks |= marks_in(node)
    return Module(path, functions, assigned, marks)


def class_marks(module: Module, name: str) -> set[str]:
    if "." not in name:
        return set()
    cls = next(n for n in ast.parse(module.path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == name.split(".")[0])
    return set().union(*(marks_in(d) for d in cls.decorator_list)) if cls.decorator_list else set()


def reach(module: Module, conftest: Module, test: str) -> list[tuple[Module, ast.AST]]:
    """The test's function and everything it uses: fixtures by argument name, then module-level names."""
    seen, todo, nodes = set(), [(module, test)], []
    while todo:
        mod, name = todo.pop()
        if (mod.path, name) in seen:
            continue
        seen.add((mod.path, name))
        node = mod.functions.get(name) or mod.assigned.get(name)
        if node is None:
            continue
        nodes.append((mod, node))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in node.args.args:  # a fixture: the module's own, else conftest's
                todo.append((mod, arg.arg) if arg.arg in mod.functions else (conftest, arg.arg))
        todo += [(mod, n.id) for n in ast.walk(node) if isinstance(n, ast.Name) and n.id != name]
    return nodes


def format_arguments(node: ast.AST) -> list[ast.AST]:
    """What in ``node`` names formats to convert to or run: every argument of a CONVERTING call, and
    the value after a FORMAT_FLAGS flag in any call's arguments or list (a command line)."""
    if isinstance(node, ast.Call):
        func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        args = list(node.args) + [k.value for k in node.keywords]
        if func in CONVERTING:
            return args
    elif isinstance(node, (ast.List, ast.Tuple)):
        args = list(node.elts)
    else:
        return []
    return [b for a, b in zip(args, args[1:]) if isinstance(a, ast.Constant) and a.value in FORMAT_FLAGS]


def constants(node: ast.AST, module: Module) -> list[str]:
    """String constants in ``node``, looking through module-level constants it names."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.Name) and n.id in module.assigned:
            out += constants(module.assigned[n.id].value, module)
    return out


def shows(signs: Signs, nodes: list[tuple[Module, ast.AST]], fixtures: set[str]) -> str | None:
    """The first sign of ``signs`` among ``nodes`` (a short description), or None."""
    if hit := set(signs.fixtures) & fixtures:
        return f"fixture {sorted(hit)[0]}"
    fmt = re.compile(rf"(^|[,:]){signs.converts_to}($|,)") if signs.converts_to else None
    for module, root in nodes:
        for n in ast.walk(root):
            if isinstance(n, ast.Import):
                imported = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and not n.level:
                imported = [n.module or ""] + [f"{n.module}.{a.name}" for a in n.names]
            else:
                imported = []
            for m in imported:
                if any(m == s or m.startswith(s + ".") for s in signs.modules):
                    return f"import {m}"
            if isinstance(n, ast.Name) and n.id in signs.names:
                return f"name {n.id}"
            if signs.strings and isinstance(n, ast.Constant) and isinstance(n.value, str) \
                    and re.search(signs.strings, n.value):
                return f"string {n.value[:40]!r}"
            if fmt:
                for value in (v for a in format_arguments(n) for v in constants(a, module)):
                    if fmt.search(value):
                        return f"{ast.unparse(n)[:50]} ... {value!r}"
    return None


def collected_tests(module: Module) -> list[str]:
    return [name for name in module.functions if name.rpartition(".")[2].startswith("test_")]


def missing_marks(path: Path, conftest: Path = TESTS / "conftest.py") -> list[str]:
    """'file::test needs @pytest.mark.X (sign)' for each marker a test needs and does not carry."""
    module, conftest = read_module(path), read_module(conftest)
    out = []
    for test in collected_tests(module):
        node = module.functions[test]
        nodes = reach(module, conftest, test)
        fixtures = {a.arg for _, n in nodes if isinstance(n, ast.FunctionDef) for a in n.args.args}
        carried = module.marks | class_marks(module, test) | set().union(*(marks_in(d) for d in node.decorator_list))
        node_id = f"tests/{path.name}::{test.rpartition('.')[2]}"
        for marker, signs in SIGNS.items():
            if marker not in carried and (node_id, marker) not in NOT_NEEDED and (sign := shows(signs, nodes, fixtures)):
                out.append(f"{node_id} needs @pytest.mark.{marker} ({sign})")
    return out


# --- the checks -----------------------------------------------------------------------------

def test_tests_carry_the_markers_of_what_they_need():
    found = [m for path in sorted(TESTS.glob("test_*.py")) if path.name != Path(__file__).name
             for m in missing_marks(path)]
    assert not found, "tests without the marker of what they need:\n  " + "\n  ".join(found)


def test_not_needed_rows_name_real_tests():
    for node_id, marker in NOT_NEEDED:
        assert marker in SIGNS, (node_id, marker)
        relative, _, test = node_id.partition("::")
        assert test in {t.rpartition(".")[2] for t in collected_tests(read_module(TESTS.parent / relative))}, node_id


def test_the_checker_follows_fixtures_and_sees_a_missing_marker(tmp_path):
    (tmp_path / "conftest.py").write_text("import pytest\n@pytest.fixture\ndef real_data_root():\n    return 1\n")
    f = tmp_path / "test_demo.py"
    f.write_text(
        "import subprocess\nimport pytest\n"
        "FORMATS = ['onnx', 'tflite']\n"
        "@pytest.fixture\n"
        "def exported(real_data_root):\n    return export(formats=FORMATS)\n"
        "def test_uses_it(exported):\n    pass\n"
        "@pytest.mark.realdata\n@pytest.mark.tflite\n"
        "def test_marked(exported):\n    pass\n"
        "def test_cli():\n    subprocess.run(['edgederm', 'export', 'x', '--to', 'onnx,coreml'])\n"
        "def test_names_formats_only():\n    add_stand_in('tflite', {'format': 'coreml'})\n"
        "    assert 'int8:tflite' in resolve('int8', ['tflite'])\n")
    assert missing_marks(f, tmp_path / "conftest.py") == [
        "tests/test_demo.py::test_uses_it needs @pytest.mark.realdata (fixture real_data_root)",
        "tests/test_demo.py::test_uses_it needs @pytest.mark.tflite (export(formats=FORMATS) ... 'tflite')",
        "tests/test_demo.py::test_cli needs @pytest.mark.coreml "
        "(['edgederm', 'export', 'x', '--to', 'onnx,coreml'] ... 'onnx,coreml')"]

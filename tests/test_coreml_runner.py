"""device_bench's Core ML runner. coremltools predicts only on macOS, so off a Mac the runner must say
so (a skipped row, not a crash), and its output handling is checked against a stand-in coremltools."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from device_bench.runners import RunnerUnavailable, open_runner
from device_bench.runners import coreml_runner


def test_off_macos_the_runner_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setattr(coreml_runner.platform, "system", lambda: "Linux")
    with pytest.raises(RunnerUnavailable, match="needs macOS"):
        open_runner("model_fp16.mlpackage", "coreml")


def fake_coremltools(predicted: list[dict]):
    """A coremltools with an MLModel whose predict returns ``predicted`` in turn; records the images it got."""
    seen = []

    class MLModel:
        def __init__(self, path, compute_units=None):
            self.path, self.compute_units = path, compute_units

        def get_spec(self):
            names = lambda *n: [types.SimpleNamespace(name=x) for x in n]  # noqa: E731
            return types.SimpleNamespace(description=types.SimpleNamespace(
                input=names("image"), output=names("classLabel", "classLabel_probs")))

        def predict(self, inputs):
            seen.append(np.asarray(inputs["image"]))
            return predicted[len(seen) - 1]

    ct = types.SimpleNamespace(__version__="0.0-test", models=types.SimpleNamespace(MLModel=MLModel),
                               ComputeUnit=types.SimpleNamespace(ALL="ALL", CPU_ONLY="CPU_ONLY",
                                                                 CPU_AND_GPU="CPU_AND_GPU", CPU_AND_NE="CPU_AND_NE"))
    return ct, seen


def test_runner_reads_probabilities_in_class_order(monkeypatch):
    probs = [{"classLabel": "b", "classLabel_probs": {"a": 0.1, "b": 0.7, "c": 0.2}},
             {"classLabel": "a", "classLabel_probs": {"a": 0.6, "b": 0.3, "c": 0.1}}]
    ct, seen = fake_coremltools(probs)
    monkeypatch.setattr(coreml_runner.platform, "system", lambda: "Darwin")
    monkeypatch.setitem(sys.modules, "coremltools", ct)
    runner = open_runner("model_fp16.mlpackage", "coreml", threads=1, compute_units="cpu")
    assert runner.delegate == "CPU_ONLY" and runner.model.compute_units == "CPU_ONLY"
    assert runner.input_name == "image" and runner.runtime == "coremltools 0.0-test"
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    out = runner(x)
    np.testing.assert_allclose(out, [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    assert len(seen) == 2 and all(np.array_equal(s, img) for s, img in zip(seen, x))  # pixels go in unchanged

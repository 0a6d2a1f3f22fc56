"""Site shift (issue 17): sources from metadata, --split all, per-source eval, ECE, operating points,
and the recalibrate verb. Synthetic sources only; nothing here needs the real data."""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from device_bench import decision
from device_bench import metrics as dm


# --- data: sources and --split all -----------------------------------------------------------
@pytest.fixture(scope="module")
def sourced_derm7(synthetic_root, tmp_path_factory):
    """The synthetic derm7 set with a metadata.csv: lesions alternate between two sites."""
    root = tmp_path_factory.mktemp("sourced") / "derm7"
    shutil.copytree(synthetic_root / "derm7", root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "source", "dx_type", "age", "sex", "localization"])
        for r in rows:
            site = "site_a" if int(r["lesion_id"][-1]) % 2 == 0 else "site_b"
            w.writerow([r["image_id"], site, "histo", "50.0", "female", "back"])
    return root


def test_sources_come_from_metadata_csv(sourced_derm7):
    from edgederm.data import load_dataset
    from edgederm.data.sources import group_indices, select_sources

    ds = load_dataset(sourced_derm7)
    assert {s.source for s in ds.samples} == {"site_a", "site_b"}
    assert sum(ds.info["sources"].values()) == len(ds.samples)
    groups = group_indices(ds)
    assert list(groups) == ["site_a", "site_b"] and sum(map(len, groups.values())) == len(ds.samples)
    assert all(ds.samples[i].source == "site_b" for i in groups["site_b"])
    assert {s.source for s in select_sources(ds, ["site_a"]).samples} == {"site_a"}
    with pytest.raises(Exception, match="site_c not in"):
        select_sources(ds, ["site_c"])


def test_source_column_in_labels_and_split_all(synthetic_root, tmp_path):
    from edgederm.data import load_dataset
    from edgederm.errors import EdgeDermError

    root = tmp_path / "ext"
    shutil.copytree(synthetic_root / "derm7", root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["source"])
        w.writeheader()
        w.writerows([{**r, "source": "clinic_x"} for r in rows])
    ds = load_dataset(root)
    assert {s.source for s in ds.samples} == {"clinic_x"}
    assert len(ds.split("all").samples) == len(ds.samples) > len(ds.split("test").samples)
    with pytest.raises(EdgeDermError, match="or all"):
        ds.split("everything")


def test_no_sources_is_a_one_line_error(synthetic_root):
    from edgederm.data import load_dataset
    from edgederm.data.sources import group_indices
    from edgederm.errors import EdgeDermError

    ds = load_dataset(synthetic_root / "derm7")
    assert all(s.source == "" for s in ds.samples)
    with pytest.raises(EdgeDermError, match="metadata.csv"):
        group_indices(ds)


def test_source_view_links_images_and_keeps_splits(sourced_derm7, tmp_path):
    from edgederm.data import load_dataset
    from edgederm.data.views import write_source_view

    view = write_source_view(sourced_derm7, tmp_path / "view", ["site_a"])
    full, part = load_dataset(sourced_derm7), load_dataset(view)
    assert (view / "images").is_symlink()
    assert {s.source for s in part.samples} == {"site_a"}
    expected = {(s.id, s.split) for s in full.samples if s.source == "site_a"}
    assert {(s.id, s.split) for s in part.samples} == expected


# --- calibration -----------------------------------------------------------------------------
def test_ece_equals_torchmetrics():
    import torch
    from torchmetrics.classification import MulticlassCalibrationError

    rng = np.random.default_rng(0)
    for trial in range(10):
        n, c = int(rng.integers(5, 300)), 7
        logits = rng.normal(0, 1 + trial, (n, c))
        prob = decision.softmax(logits)
        if trial == 3:
            prob[0] = np.eye(c)[0]  # confidence exactly 1.0: torchmetrics' extra last bin
        y = rng.integers(0, c, n)
        want = MulticlassCalibrationError(num_classes=c, n_bins=15, norm="l1")(torch.tensor(prob), torch.tensor(y))
        assert dm.expected_calibration_error(y, prob) == pytest.approx(float(want), abs=1e-6)


def test_reliability_bins_and_ece_agree():
    rng = np.random.default_rng(1)
    prob = decision.softmax(rng.normal(0, 2, (200, 4)))
    y = rng.integers(0, 4, 200)
    b = dm.reliability_bins(y, prob)
    assert sum(b["count"]) == 200
    gap = sum(n * abs(a - c) for n, a, c in zip(b["count"], b["accuracy"], b["confidence"]) if n)
    assert gap / 200 == pytest.approx(dm.expected_calibration_error(y, prob))
    perfect = np.eye(4)[y]
    assert dm.expected_calibration_error(y, perfect) == 0.0


def test_classification_metrics_carry_ece_in_both_homes():
    from edgederm.metrics import classification_metrics

    rng = np.random.default_rng(2)
    y, prob = rng.integers(0, 3, 60), decision.softmax(rng.normal(0, 2, (60, 3)))
    a = classification_metrics(y, prob, ["a", "b", "mel"], n_boot=50)["ece"]
    b = dm.classification_metrics(y, prob, ["a", "b", "mel"], n_boot=50)["ece"]
    assert b == pytest.approx(a.to_dict(), abs=1e-12) and a.low <= a.value <= a.high


def test_fit_temperature_recovers_overconfidence():
    from edgederm.recalibrate import fit_temperature

    rng = np.random.default_rng(3)
    z = rng.normal(0, 1.5, (4000, 5))
    y = np.array([rng.choice(5, p=p) for p in decision.softmax(z)])
    assert fit_temperature(z * 3.0, y) == pytest.approx(3.0, rel=0.1)
    over = dm.expected_calibration_error(y, decision.softmax(z * 3.0))
    assert dm.expected_calibration_error(y, decision.softmax(z * 3.0, fit_temperature(z * 3.0, y))) < over / 2


# --- operating points ------------------------------------------------------------------------
@pytest.mark.parametrize("kind,value", [("specificity", 0.8), ("specificity", 0.95), ("sensitivity", 0.9)])
def test_fit_threshold_meets_its_target_and_is_the_tightest(kind, value):
    rng = np.random.default_rng(4)
    positive = rng.random(300) < 0.2
    score = np.where(positive, rng.beta(4, 2, 300), rng.beta(2, 4, 300))
    t = decision.fit_threshold(positive, score, {kind: value})
    spec, sens = np.mean(score[~positive] < t), np.mean(score[positive] >= t)
    if kind == "specificity":  # moving t below the highest negative under it breaks the target
        lower = np.max(score[~positive & (score < t)])
        assert spec >= value and np.mean(score[~positive] < lower) < value
    else:  # moving t above the lowest positive over it breaks the target
        higher = np.min(score[positive & (score >= t)])
        assert sens >= value and np.mean(score[positive] > higher) < value
    assert np.isnan(decision.fit_threshold(np.zeros(5, bool), np.arange(5.0), {kind: value}))


def test_fit_rule_records_ci_provenance_and_figures():
    rng = np.random.default_rng(5)
    classes = ["nv", "mel"]
    y = (rng.random(400) < 0.25).astype(int)
    prob = decision.softmax(np.c_[np.zeros(400), rng.normal(0, 1, 400) + 1.5 * y])
    rule = decision.fit_rule("refer_mel", "mel", {"specificity": 0.8}, y, prob, classes,
                             {"data": "synthetic", "split": "val"}, n_boot=100)
    assert rule["fitted_on"]["images"] == 400 and rule["fitted_on"]["positives"] == int(y.sum())
    lo, hi = rule["ci"]["threshold"]
    assert lo <= rule["threshold"] <= hi
    assert rule["figures"]["specificity"]["value"] >= 0.8
    json.dumps(rule, allow_nan=False)
    fired = decision.apply_rule(prob, classes, rule)
    assert fired.tolist() == (prob[:, 1] >= rule["threshold"]).tolist()


def test_device_bench_applies_the_manifest_temperature_and_rules():
    from device_bench.bench import evaluate

    rng = np.random.default_rng(6)
    classes = ["nv", "mel"]
    logits = rng.normal(0, 3, (30, 2)).astype(np.float32)
    labels = rng.integers(0, 2, 30)
    rule = {"name": "refer_mel", "class": "mel", "threshold": 0.3, "target": {"specificity": 0.8}}
    output = {"temperature": 2.5, "operating_points": [rule]}
    bundle = SimpleNamespace(task="classification", manifest={"output": output},
                             eval=SimpleNamespace(labels=labels, classes=classes, ids=[str(i) for i in range(30)]))
    artifact = {"format": "onnx", "outputs": [{"layout": "NC"}]}
    x = np.arange(30)[:, None]
    m, per_image = evaluate(bundle, artifact, lambda xi: logits[xi[:, 0]], x, n_boot=20)
    prob = decision.softmax(logits, 2.5)
    np.testing.assert_allclose(per_image["probs"], prob, atol=1e-6)
    assert m["ece"]["value"] == pytest.approx(dm.expected_calibration_error(labels, prob))
    fired = prob[:, 1] >= 0.3
    assert m["refer_mel_sensitivity"]["value"] == pytest.approx(fired[labels == 1].mean())
    assert m["refer_mel_specificity"]["value"] == pytest.approx((~fired[labels == 0]).mean())
    # Core ML gives probabilities: the temperature is applied to their logarithm, the same result
    coreml = {"format": "coreml", "outputs": [{"layout": "NC"}]}
    m2, per2 = evaluate(bundle, coreml, lambda xi: decision.softmax(logits[xi[:, 0]]), x, n_boot=20)
    np.testing.assert_allclose(per2["probs"], prob, atol=1e-6)


# --- CLI: eval --by source, recalibrate --------------------------------------------------------
def test_eval_by_source_and_reliability_plot(tiny_classifier, sourced_derm7, tmp_path, capsys):
    from edgederm.cli import main

    png = tmp_path / "rel.png"
    code = main(["eval", str(tiny_classifier), "--dataset", str(sourced_derm7), "--split", "all", "--by", "source",
                 "--bootstrap", "20", "--json", "--reliability", str(png)])
    assert code == 0 and png.stat().st_size > 1000
    out = json.loads(capsys.readouterr().out)
    groups = out["groups"]
    assert set(groups) == {"all", "site_a", "site_b"}
    assert groups["site_a"]["images"] + groups["site_b"]["images"] == groups["all"]["images"] == out["images"]
    assert "ece" in groups["site_a"]["metrics"]
    code = main(["eval", str(tiny_classifier), "--dataset", str(sourced_derm7), "--by", "source", "--bootstrap", "2"])
    assert code == 0 and "by source:" in capsys.readouterr().out


def _manifest_folder(tiny_classifier, tmp_path):
    """An export folder with the tiny classifier's manifest and one (fake) artifact file."""
    from device_bench.integrity import sha256_file
    from edgederm.checkpoint import load_checkpoint
    from edgederm.manifest import Artifact, Manifest, TensorSpec, output_spec

    _, card = load_checkpoint(tiny_classifier)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not really a model, but bytes whose hash is recorded")
    art = Artifact("onnx_fp32", "model.onnx", "onnx", "fp32", [TensorSpec("input", [1, 3, 48, 64])],
                   [TensorSpec("logits", [1, 7], layout="NC")], sha256=sha256_file(folder / "model.onnx"))
    m = Manifest(model={"name": "tiny", "architecture": card.architecture, "task": "classification",
                        "classes": card.classes, "checkpoint": str(tiny_classifier)},
                 preprocessing=card.preprocessing, output=output_spec("classification", card.classes), artifacts=[art])
    m.save(folder)
    return folder


def test_recalibrate_writes_a_new_revision_with_artifacts_unchanged(tiny_classifier, sourced_derm7, tmp_path, capsys):
    from edgederm.cli import main
    from edgederm.manifest import Manifest

    folder = _manifest_folder(tiny_classifier, tmp_path)
    before = (folder / "model.onnx").read_bytes()
    code = main(["recalibrate", str(folder), "--data", str(sourced_derm7), "--min-images", "20", "--min-positives", "2",
                 "--bootstrap", "30", "--rule", "refer_mel:mel:specificity=0.8"])
    out = capsys.readouterr()
    assert code == 0, out.err
    m = Manifest.load(folder)
    assert m.output["revision"] == 2 and (folder / m.output["previous"]).exists()
    assert m.output["temperature"] > 0
    (rule,) = m.output["operating_points"]
    assert rule["name"] == "refer_mel" and rule["fitted_on"]["split"] == "train" and rule["threshold"] is not None
    assert (folder / "model.onnx").read_bytes() == before
    assert m.steps[-1]["stage"] == "recalibrate" and "refer_mel_sensitivity" in m.steps[-1]["after"]
    assert "before" in out.out and "after" in out.out
    json.loads((folder / "manifest.json").read_text())  # strict JSON (no NaN)
    # a second run re-tunes the manifest's own rule, and archives revision 2
    assert main(["recalibrate", str(folder), "--data", str(sourced_derm7), "--min-images", "20",
                 "--min-positives", "2", "--bootstrap", "0", "--source", "site_a", "--holdout-split", "none"]) == 0
    assert Manifest.load(folder).output["revision"] == 3 and (folder / "manifest.r2.json").exists()


def test_recalibrate_says_when_the_sample_is_too_small(tiny_classifier, sourced_derm7, tmp_path, capsys):
    from edgederm.cli import main
    from edgederm.manifest import Manifest

    folder = _manifest_folder(tiny_classifier, tmp_path)
    code = main(["recalibrate", str(folder), "--data", str(sourced_derm7), "--bootstrap", "0"])
    out = capsys.readouterr()
    assert code == 0 and "too small" in out.err and "nothing written" in out.out
    assert "revision" not in Manifest.load(folder).output
    # a changed artifact is refused before anything is fitted
    (folder / "model.onnx").write_bytes(b"tampered")
    assert main(["recalibrate", str(folder), "--data", str(sourced_derm7), "--force"]) == 2
    assert main(["recalibrate", str(folder), "--data", str(sourced_derm7), "--rule", "x:mel"]) == 2


def test_host_bench_scorer_applies_the_same_temperature_and_rules():
    from edgederm.bench import scorer

    rng = np.random.default_rng(7)
    classes = ["nv", "mel"]
    logits = rng.normal(0, 3, (50, 2))
    y = rng.integers(0, 2, 50)
    rule = {"name": "refer_mel", "class": "mel", "threshold": 0.4, "target": {"specificity": 0.8}}
    output = {"temperature": 0.5, "operating_points": [rule]}
    per_image, functions = scorer("classification", y, classes, output)
    prob = per_image(logits, False)
    np.testing.assert_allclose(prob, decision.softmax(logits, 0.5))
    np.testing.assert_allclose(per_image(decision.softmax(logits), True), prob, atol=1e-9)  # Core ML probabilities
    fns = functions(prob)
    want = decision.decision_metrics(y, prob, classes, [rule], n_boot=0)
    all_i = np.arange(50)
    assert fns["refer_mel_sensitivity"](all_i) == pytest.approx(want["refer_mel_sensitivity"]["value"])
    assert fns["refer_mel_specificity"](all_i) == pytest.approx(want["refer_mel_specificity"]["value"])
    assert fns["ece"](all_i) == pytest.approx(dm.expected_calibration_error(y, prob))


def test_kits_carry_the_manifest_rule(tiny_classifier, tmp_path):
    from edgederm.embed import model_info
    from edgederm.embed.task_samples import kotlin_decision_spec, swift_decision_spec
    from edgederm.manifest import Manifest

    folder = _manifest_folder(tiny_classifier, tmp_path)
    m = Manifest.load(folder)
    m.output = {**m.output, "temperature": 1.7, "operating_points": [
        {"name": "refer_mel", "class": "mel", "threshold": 0.23, "target": {"specificity": 0.8}},
        {"name": "unfitted", "class": "bcc", "threshold": None, "target": {"sensitivity": 0.9}}]}
    info = model_info(m, m.artifacts[0])
    assert info.output["temperature"] == 1.7
    assert [r["name"] for r in info.output["operating_points"]] == ["refer_mel"]
    kt = kotlin_decision_spec(m)
    assert "TEMPERATURE = 1.7f" in kt and f'OperatingPoint("refer_mel", {m.classes.index("mel")}, 0.23f)' in kt
    sw = swift_decision_spec(m)
    assert "temperature: Float = 1.7" in sw and '(name: "refer_mel", label: "mel", threshold: 0.23)' in sw


def test_bench_table_shows_ece_and_the_rule():
    from edgederm.report import decision_columns

    cols = decision_columns({"ece": {"value": 0.0812}, "refer_mel_sensitivity": {"value": 0.61},
                             "refer_mel_specificity": {"value": 0.8}, "balanced_accuracy": {"value": 0.5}})
    assert cols == {"ECE": "0.081", "refer_mel sens/spec": "0.610/0.800"}
    assert decision_columns({}) == {"ECE": "-"}

"""Structured pruning: channels really go, protected layers stay, targets are met, pruned
checkpoints reload and export with parity, and bad inputs give one-line errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from edgederm.checkpoint import load_checkpoint, read_card, save_checkpoint
from edgederm.errors import EdgeDermError
from edgederm.models.deploy import apply_pruned_shapes
from edgederm.prune import PruneConfig, prune_checkpoint, prune_model


def _example(card):
    torch.manual_seed(0)
    return torch.randn(1, 3, *card.preprocessing.input_size)


def _out_channels(module):
    return getattr(module, "out_channels", getattr(module, "out_features", None))


def test_classifier_loses_channels_but_keeps_stem_and_head(tiny_classifier):
    model, card = load_checkpoint(tiny_classifier)
    x = _example(card)
    stem, head = _out_channels(model.conv_stem), _out_channels(model.classifier)
    result = prune_model(model, x, PruneConfig(sparsity=0.5))
    assert result.macs[1] < 0.6 * result.macs[0] and result.params[1] < 0.6 * result.params[0]
    assert {"conv_stem", "classifier"} <= set(result.protected)
    assert _out_channels(model.conv_stem) == stem and _out_channels(model.classifier) == head == len(card.classes)
    assert model(x).shape == (1, len(card.classes))
    # round_to=8: every pruned conv keeps a multiple of 8 channels
    pruned_convs = [a["out_channels"] for a in result.layout.values() if "out_channels" in a]
    assert pruned_convs and all(c % 8 == 0 for c in pruned_convs)


def test_user_protected_layer_keeps_its_channels(tiny_classifier):
    model, card = load_checkpoint(tiny_classifier)
    name = "blocks.3.0.conv_pw"
    before = _out_channels(model.get_submodule(name))
    result = prune_model(model, _example(card), PruneConfig(sparsity=0.5, protect=[name]))
    assert result.protected[name] == "--protect"
    assert _out_channels(model.get_submodule(name)) == before
    assert name not in result.layout or result.layout[name]["out_channels"] == before


def test_segmenter_keeps_unpooling_pairs_aligned(tiny_segmenter):
    model, card = load_checkpoint(tiny_segmenter)
    x = _example(card)
    # global ranking prunes each layer differently: the SegNet's encoder/decoder pairs joined only
    # by max-pool indices must still get identical channels, or max_unpool2d fails
    result = prune_model(model, x, PruneConfig(sparsity=0.5, global_pruning=True))
    assert len(result.coupled) == 4
    for enc, dec in result.coupled:
        assert model.get_submodule(enc).out_channels == model.get_submodule(dec).out_channels
    assert any(model.get_submodule(e).out_channels < 64 for e, _ in result.coupled)
    assert result.macs[1] < 0.7 * result.macs[0]
    assert model(x).shape == (1, 1, *card.preprocessing.input_size)
    assert model.head.out_channels == 1 and model.enc[0][0][0].out_channels == 16


def test_macs_budget_is_reached(tiny_classifier):
    model, card = load_checkpoint(tiny_classifier)
    result = prune_model(model, _example(card), PruneConfig(macs_budget=0.6))
    assert result.macs[1] <= 0.6 * result.macs[0]
    assert result.macs[1] > 0.3 * result.macs[0]  # iterative: stops soon after the budget, not at the floor
    assert result.steps > 1


@pytest.mark.parametrize("importance", ["l1", "taylor", "bn_scale"])
def test_other_importances_prune(tiny_classifier, importance):
    model, card = load_checkpoint(tiny_classifier)
    x = _example(card)
    loss = (lambda m: torch.nn.functional.cross_entropy(m(x.repeat(4, 1, 1, 1)), torch.arange(4))) \
        if importance == "taylor" else None
    result = prune_model(model, x, PruneConfig(sparsity=0.4, importance=importance), loss_fn=loss)
    assert result.macs[1] < 0.9 * result.macs[0]
    assert model(x).shape == (1, len(card.classes))


def test_pruned_checkpoint_reloads_with_identical_outputs(tiny_segmenter, tmp_path):
    model, card = load_checkpoint(tiny_segmenter)
    x = _example(card)
    result = prune_model(model, x, PruneConfig(sparsity=0.4, global_pruning=True))
    path = save_checkpoint(model, replace(card, pruning=result.record(PruneConfig(sparsity=0.4), card.architecture, {})),
                           tmp_path / "pruned")
    reloaded, rcard = load_checkpoint(path)
    assert rcard.pruning["layers"] == result.layout
    with torch.no_grad():
        assert torch.equal(reloaded(x), model.eval()(x))
    # the recorded shapes alone rebuild the layout; a wrong layout fails loudly, not silently
    bad = replace(rcard, pruning={"layers": {**result.layout, "no.such.layer": {"out_channels": 8}}})
    with pytest.raises(EdgeDermError, match="no.such.layer"):
        load_checkpoint(path, bad)


def test_apply_pruned_shapes_then_strict_load_rejects_mismatch(tiny_classifier):
    model, card = load_checkpoint(tiny_classifier)
    pruned = load_checkpoint(tiny_classifier)[0]
    result = prune_model(pruned, _example(card), PruneConfig(sparsity=0.5))
    apply_pruned_shapes(model, result.layout)
    model.load_state_dict(pruned.state_dict(), strict=True)  # same shapes everywhere
    fresh = load_checkpoint(tiny_classifier)[0]
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(pruned.state_dict(), strict=True)


def test_prune_checkpoint_then_eval_and_onnx_export_unchanged(tiny_classifier, synthetic_root, tmp_path):
    from edgederm.evaluate import evaluate_checkpoint
    from edgederm.export import export

    outcome = prune_checkpoint(tiny_classifier, tmp_path / "pruned", PruneConfig(sparsity=0.5), synthetic_root)
    card = read_card(outcome.path)
    assert card.pruning["macs"][1] < 0.6 * card.pruning["macs"][0] and card.metrics == {}
    assert outcome.size_bytes[1] < 0.7 * outcome.size_bytes[0]
    assert set(outcome.val_before) == set(outcome.val_after) == {"balanced_accuracy"}
    metrics, _, n = evaluate_checkpoint(outcome.path, synthetic_root, n_boot=0)
    assert n > 0 and 0 <= metrics["balanced_accuracy"].value <= 1
    result = export(outcome.path, tmp_path / "onnx", formats=["onnx"], data_root=synthetic_root, n_verify=32)
    assert not result.failures
    art = result.manifest.artifact("onnx_fp32")
    assert art.verify["status"] == "pass" and art.verify["figures"]["max_abs_prob"] < 1e-4
    assert not list(tmp_path.glob(".*tmp-*"))


def test_pruning_a_pruned_checkpoint_again_reloads(tiny_classifier, synthetic_root, tmp_path):
    first = prune_checkpoint(tiny_classifier, tmp_path / "a", PruneConfig(sparsity=0.3, bn_recalibration_images=16),
                             synthetic_root)
    second = prune_checkpoint(first.path, tmp_path / "b", PruneConfig(sparsity=0.3, bn_recalibration_images=16),
                              synthetic_root)
    card = read_card(second.path)
    assert set(read_card(first.path).pruning["layers"]) <= set(card.pruning["layers"])
    model, _ = load_checkpoint(second.path)  # the layout is relative to the zoo build, not to the first pruning
    assert second.result.macs[1] < second.result.macs[0] == pytest.approx(first.result.macs[1])
    assert model(torch.zeros(1, 3, *card.preprocessing.input_size)).shape == (1, len(card.classes))


@pytest.mark.slow
def test_finetune_with_distillation_writes_a_loadable_card(tiny_classifier, synthetic_root, tmp_path):
    outcome = prune_checkpoint(tiny_classifier, tmp_path / "ft", PruneConfig(
        macs_budget=0.7, finetune_epochs=1, distill=True, batch_size=16), synthetic_root, n_boot=0)
    card = read_card(outcome.path)
    assert card.training["distill_from"] == str(tiny_classifier) and card.training["epochs"] == 1
    assert card.metrics["split"] == "test" and "balanced_accuracy" in card.metrics
    assert card.pruning["layers"] and card.pruning["source"]["checkpoint"] == str(tiny_classifier)
    model, _ = load_checkpoint(outcome.path)
    assert model(torch.zeros(1, 3, *card.preprocessing.input_size)).shape == (1, len(card.classes))


def test_cli_prints_measured_table(tiny_classifier, synthetic_root, tmp_path, capsys):
    from edgederm.cli import main

    # one thread: on a shared 2-core machine a 2-thread torch benchmark is dominated by waiting
    rc = main(["prune", str(tiny_classifier), "--sparsity", "0.5", "--bench", "torch,onnx", "--threads", "1", "--data",
               str(synthetic_root), "--out", str(tmp_path / "p.safetensors")])
    out = capsys.readouterr().out
    assert rc == 0
    for row in ("params (M)", "MACs (M)", "checkpoint (MB)", "val balanced_accuracy", "PyTorch eager ms",
                "ONNX Runtime fp32 ms"):
        assert row in out
    assert "faster" in out  # each latency row says "N.NNx faster" or "not faster (N.NNx)"


@pytest.mark.slow
@pytest.mark.tflite
def test_cli_tflite_latency(tiny_classifier, synthetic_root, tmp_path, capsys):
    from edgederm.cli import main

    rc = main(["prune", str(tiny_classifier), "--sparsity", "0.5", "--bench", "tflite", "--data",
               str(synthetic_root), "--out", str(tmp_path / "p.safetensors")])
    assert rc == 0 and "LiteRT fp32 (XNNPACK) ms" in capsys.readouterr().out


@pytest.mark.slow
def test_pruned_segnet_exports_through_its_twin(tiny_segmenter, synthetic_root, tmp_path):
    from edgederm.export import export

    outcome = prune_checkpoint(tiny_segmenter, tmp_path / "pseg", PruneConfig(sparsity=0.5), synthetic_root)
    result = export(outcome.path, tmp_path / "onnx", formats=["onnx"], data_root=synthetic_root, n_verify=8)
    assert not result.failures and result.manifest.artifact("onnx_fp32").verify["status"] == "pass"


def test_pruned_segnet_twin_matches(tiny_segmenter):
    from edgederm.prune import deployable_twin

    model, card = load_checkpoint(tiny_segmenter)
    x = _example(card)
    result = prune_model(model, x, PruneConfig(sparsity=0.5, global_pruning=True))
    card = replace(card, pruning={"layers": result.layout})
    twin, twin_card = deployable_twin(model, card)
    assert twin_card.architecture == "segnet_mobile"
    with torch.no_grad():
        assert torch.allclose(twin(x), model(x), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 1.2}, "--sparsity 1.2 must be between 0 and 1"),
    ({"sparsity": 0.0}, "--sparsity 0.0 must be between 0 and 1"),
    ({"macs_budget": 1.0}, "--macs-budget 1.0 must be between 0 and 1"),
    ({}, "give exactly one pruning target"),
    ({"sparsity": 0.3, "macs_budget": 0.5}, "give exactly one pruning target"),
    ({"sparsity": 0.3, "importance": "l3"}, "unknown importance 'l3'; did you mean"),
    ({"sparsity": 0.3, "distill": True}, "--distill needs fine-tuning"),
    ({"sparsity": 0.3, "round_to": 0}, "--round-to 0"),
])
def test_bad_config_one_line_errors(kwargs, message):
    with pytest.raises(EdgeDermError) as e:
        PruneConfig(**kwargs).validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_segmenter_finetunes_against_the_unpruned_masks(tiny_segmenter, synthetic_root, tmp_path):
    """Segmentation distillation: the pruned U-Net learns the unpruned one's per-pixel probabilities."""
    outcome = prune_checkpoint(tiny_segmenter, tmp_path / "s", PruneConfig(
        sparsity=0.3, finetune_epochs=1, distill=True, batch_size=8), synthetic_root, n_boot=0)
    card = read_card(outcome.path)
    assert card.training["distill_from"] == str(tiny_segmenter) and "dice" in card.metrics
    model, _ = load_checkpoint(outcome.path)
    x = torch.zeros(1, 3, *card.preprocessing.input_size)
    assert model(x).shape[-2:] == x.shape[-2:] and outcome.result.macs[1] < outcome.result.macs[0]
    # ... and `train --init` fine-tunes it further with its pruned shapes and pruning record kept
    from edgederm.cli import main

    more = tmp_path / "more.safetensors"
    assert main(["train", "--init", str(outcome.path), "--dataset", "lesionseg", "--epochs", "1", "--batch-size", "8",
                 "--distill-from", str(tiny_segmenter), "--data", str(synthetic_root), "--bootstrap", "0",
                 "--out", str(more)]) == 0
    again, card2 = load_checkpoint(more)
    assert card2.pruning == card.pruning and card2.training["extra"]["init_from"] == str(outcome.path)
    assert [t.shape for t in again.state_dict().values()] == [t.shape for t in model.state_dict().values()]


def test_teacher_of_another_task_is_refused(tiny_segmenter, tiny_classifier, synthetic_root, tmp_path):
    from edgederm.train import TrainConfig, train

    card = read_card(tiny_segmenter)
    config = TrainConfig(card.architecture, "lesionseg", epochs=1, distill_from=str(tiny_classifier))
    with pytest.raises(EdgeDermError, match="is a classification model, data is segmentation"):
        train(config, synthetic_root, tmp_path / "x.safetensors", n_boot=0)


def test_unknown_protected_layer_suggests_a_name(tiny_classifier):
    model, card = load_checkpoint(tiny_classifier)
    with pytest.raises(EdgeDermError, match=r"--protect 'conv_stemm': no such layer.*did you mean 'conv_stem'") as e:
        prune_model(model, _example(card), PruneConfig(sparsity=0.3, protect=["conv_stemm"]))
    assert "\n" not in str(e.value)


def test_cli_bad_inputs_exit_2_with_one_line(tiny_classifier, tmp_path, capsys):
    from edgederm.cli import main

    for argv, needle in [
        (["--sparsity", "1.5"], "--sparsity 1.5 must be between 0 and 1"),
        (["--sparsity", "0.3", "--importance", "l5"], "unknown importance 'l5'"),
        (["--sparsity", "0.3", "--bench", "tensorrt"], "--bench 'tensorrt'"),
    ]:
        rc = main(["prune", str(tiny_classifier), *argv, "--out", str(tmp_path / "x.safetensors")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())

"""Recalibrate an export for a site: temperature and operating points from a small local sample.

The artifacts are not touched (their sha256 is proven before and after); what changes is
metadata the runtimes apply: ``output.temperature`` (probabilities are softmax(logits / T))
and ``output.operating_points`` (named rules "refer if P(class) >= t", each t chosen on the
local sample for its target specificity or sensitivity, with a bootstrap CI). The previous
manifest is kept beside the new one as ``manifest.r<N>.json``.

Both are fitted on the PyTorch original's logits for the sample. The result is measured on
held-out images of the same site, before and after, with 95 % CIs; a sample too small, with
too few positives for a rule, or with a class mix unlike the held-out images, is said so,
and then nothing is moved unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.tasks import task_of

DEFAULT_RULE = ("refer_mel", "mel", {"specificity": 0.80})


@dataclass
class RecalConfig:
    fit_split: str = "train"  # the local labelled sample
    holdout_split: str | None = "test"  # held-out images of the site (None: report on the sample only)
    fit_limit: int | None = None  # class-stratified subset of the sample
    sources: tuple[str, ...] = ()  # only images from these acquisition sources
    rules: list[tuple[str, str, dict]] = field(default_factory=list)  # (name, class, target); default: existing
    temperature: bool = True
    min_images: int = 100
    min_positives: int = 10
    max_mix_distance: float = 0.20  # total variation between the sample's class mix and the held-out's
    force: bool = False
    n_boot: int = 1000
    seed: int = 0


def parse_rule(text: str) -> tuple[str, str, dict]:
    """``NAME:CLASS:specificity=0.8`` (or sensitivity=...) -> (name, class, target)."""
    try:
        name, cls, target = text.split(":")
        kind, value = target.split("=")
        value = float(value)
    except ValueError:
        raise EdgeDermError(f"--rule {text!r} must be NAME:CLASS:specificity=S or NAME:CLASS:sensitivity=S, "
                            "e.g. refer_mel:mel:specificity=0.8") from None
    if kind not in ("specificity", "sensitivity") or not 0.0 < value < 1.0:
        raise EdgeDermError(f"--rule {text!r}: target must be specificity or sensitivity, strictly between 0 and 1")
    return name, cls, {kind: value}


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of softmax(logits / T) (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, y = np.asarray(logits, np.float64), np.asarray(y)

    def nll(log_t):
        return -float(np.mean(log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def class_mix(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(np.asarray(y, int), minlength=n_classes).astype(float)
    return counts / max(counts.sum(), 1.0)


def sample_checks(y_fit, y_hold, classes, rules, config: RecalConfig) -> tuple[list[str], set[str]]:
    """(plain-language warnings, names of rules whose threshold must not move)."""
    warnings, frozen = [], set()
    n = len(y_fit)
    if n < config.min_images:
        warnings.append(f"the sample has {n} images, fewer than {config.min_images}: too small to fit a temperature "
                        "or move a threshold reliably; collect more labelled images of the site")
    for name, cls, _ in rules:
        k = int(np.sum(np.asarray(y_fit) == list(classes).index(cls)))
        if k < config.min_positives:
            warnings.append(f"rule {name}: the sample has {k} {cls} image(s), fewer than {config.min_positives}: "
                            "its threshold cannot be re-tuned reliably and stays as it was")
            frozen.add(name)
    if y_hold is not None and len(y_hold):
        a, b = class_mix(y_fit, len(classes)), class_mix(y_hold, len(classes))
        tv = 0.5 * float(np.abs(a - b).sum())
        if tv > config.max_mix_distance:
            warnings.append(f"the sample's class mix differs from the site's held-out images (total variation "
                            f"{tv:.2f} > {config.max_mix_distance}): it does not represent the site; figures may not "
                            "transfer")
    return warnings, frozen


def _site_data(data: Path, manifest, config: RecalConfig):
    from edgederm.data import load_dataset
    from edgederm.data.sources import select_sources

    ds = load_dataset(data)
    if ds.task != manifest.task or list(ds.classes) != manifest.classes:
        raise EdgeDermError(f"--data {data} holds {ds.task} data with classes {', '.join(ds.classes)}; the model "
                            f"needs {', '.join(manifest.classes)}: pass a sample labelled with the model's classes")
    if config.sources:
        ds = select_sources(ds, list(config.sources))
    fit = ds.split(config.fit_split)
    if config.fit_limit:
        fit = fit.subset(config.fit_limit, seed=config.seed)
    hold = ds.split(config.holdout_split) if config.holdout_split else None
    if hold is not None and {s.id for s in fit.samples} & {s.id for s in hold.samples}:
        raise EdgeDermError(f"--fit-split {config.fit_split} and --holdout-split {config.holdout_split} overlap: "
                            "hold out images the sample does not contain")
    return fit, hold


def _logits(model, ds, prep):
    from edgederm.data.arrays import load_arrays
    from edgederm.tensors import predict

    arrays = load_arrays(ds, prep, desc="decode site images")
    return predict(model, arrays.images, prep, desc="original"), arrays.targets


def _figures(logits, y, classes, temperature, rules, n_boot, seed) -> dict[str, dict]:
    from device_bench import decision, metrics

    prob = decision.softmax(logits, temperature)
    out = {"ece": metrics.with_ci(lambda i: metrics.expected_calibration_error(y[i], prob[i]), len(y), n_boot, seed),
           "balanced_accuracy": metrics.with_ci(lambda i: metrics.balanced_accuracy(y[i], prob[i].argmax(1)),
                                                len(y), n_boot, seed)}
    if "mel" in classes:
        m = list(classes).index("mel")
        out["mel_sensitivity_argmax"] = metrics.with_ci(
            lambda i: float(np.mean(prob[i][y[i] == m].argmax(1) == m)) if np.any(y[i] == m) else float("nan"),
            len(y), n_boot, seed)
    out.update(decision.decision_metrics(y, prob, list(classes), rules, n_boot, seed))
    return out


def refit(manifest, fit_logits, y_fit, config: RecalConfig, fitted_on: dict, frozen: set[str]):
    """(temperature, operating points) for the sample: unchanged where ``frozen`` or not fitted."""
    from device_bench import decision

    old_t = decision.temperature_of(manifest.output)
    old_rules = {r["name"]: r for r in decision.rules_of(manifest.output)}
    t = fit_temperature(fit_logits, y_fit) if config.temperature and "__all__" not in frozen else old_t
    prob = decision.softmax(fit_logits, t)
    rules = []
    for name, cls, target in rules_to_fit(manifest, config):
        if name in frozen or "__all__" in frozen:
            if name in old_rules:
                rules.append(old_rules[name])
            continue
        rules.append(decision.fit_rule(name, cls, target, y_fit, prob, manifest.classes,
                                       {**fitted_on, "temperature": t}, n_boot=config.n_boot, seed=config.seed))
    rules += [r for n, r in old_rules.items() if n not in {x["name"] for x in rules}]
    return t, rules


def rules_to_fit(manifest, config: RecalConfig) -> list[tuple[str, str, dict]]:
    from device_bench.decision import rules_of

    rules = list(config.rules) or [(r["name"], r["class"], r["target"]) for r in rules_of(manifest.output)]
    if not rules and DEFAULT_RULE[1] in manifest.classes:
        rules = [DEFAULT_RULE]
    for name, cls, _ in rules:
        if cls not in manifest.classes:
            raise EdgeDermError(f"--rule {name}: class {cls!r} is not one of {', '.join(manifest.classes)}")
    return rules


def recalibrate(folder: Path, data: Path, config: RecalConfig, model=None, dry_run: bool = False) -> dict:
    """Fit, measure before/after, and (unless ``dry_run`` or refused) write the new manifest revision."""
    from device_bench import decision

    manifest, folder = _load(folder)
    for a in manifest.artifacts:
        manifest.artifact_file(folder, a)  # the bytes the new metadata will describe, proven unchanged
    model = model if model is not None else _original(manifest)
    fit, hold = _site_data(Path(data), manifest, config)
    fit_logits, y_fit = _logits(model, fit, manifest.preprocessing)
    hold_logits, y_hold = _logits(model, hold, manifest.preprocessing) if hold is not None else (None, None)
    rules = rules_to_fit(manifest, config)
    warnings, frozen = sample_checks(y_fit, y_hold, manifest.classes, rules, config)
    if len(y_fit) < config.min_images and not config.force:
        frozen.add("__all__")
    fitted_on = {"data": str(Path(data)), "split": config.fit_split, "sources": list(config.sources) or None,
                 "class_counts": dict(zip(manifest.classes, np.bincount(y_fit, minlength=len(manifest.classes)).tolist()))}
    if config.force:
        frozen = set()
    t, new_rules = refit(manifest, fit_logits, y_fit, config, fitted_on, frozen)
    old_t, old_rules = decision.temperature_of(manifest.output), decision.rules_of(manifest.output)
    eval_logits, y_eval = (hold_logits, y_hold) if hold is not None else (fit_logits, y_fit)
    before = _figures(eval_logits, y_eval, manifest.classes, old_t, old_rules, config.n_boot, config.seed)
    after = _figures(eval_logits, y_eval, manifest.classes, t, new_rules, config.n_boot, config.seed)
    outcome = {"folder": str(folder), "temperature": {"before": old_t, "after": t}, "rules": new_rules,
               "fit_images": int(len(y_fit)), "evaluated_on": (f"{config.holdout_split} ({len(y_eval)} held-out images)"
                                                             if hold is not None else
                                                             f"the sample itself ({len(y_eval)} images; optimistic)"),
               "before": before, "after": after, "warnings": warnings, "changed": "__all__" not in frozen,
               "written": None}
    if not dry_run and outcome["changed"]:
        outcome["written"] = str(_write_revision(manifest, folder, t, new_rules, outcome))
    return outcome


def _load(folder: Path):
    from edgederm.manifest import Manifest

    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    if not task_of(manifest.task).has_class_labels:  # a temperature and rules act on class probabilities
        raise EdgeDermError(f"{folder} holds a {manifest.task} model: recalibrate works on classifiers")
    return manifest, folder


def _original(manifest):
    from edgederm.byom import is_foreign
    from edgederm.checkpoint import load_checkpoint

    source = manifest.model.get("checkpoint")
    if not source or is_foreign(source) or not Path(source).exists():
        raise EdgeDermError(f"the manifest's original {source!r} is not an EdgeDerm checkpoint here: "
                            "pass --checkpoint CKPT (the PyTorch original)")
    return load_checkpoint(source)[0]


def _write_revision(manifest, folder: Path, t: float, rules: list[dict], outcome: dict) -> Path:
    from device_bench.integrity import write_json

    revision = int(manifest.output.get("revision", 1))
    archived = write_json(folder / f"manifest.r{revision}.json", manifest.to_dict())
    manifest.output = {**manifest.output, "temperature": t, "operating_points": rules, "revision": revision + 1,
                       "previous": archived.name}
    manifest.add_step("recalibrate", revision=revision + 1, temperature=t, fit_images=outcome["fit_images"],
                      evaluated_on=outcome["evaluated_on"], before=outcome["before"], after=outcome["after"],
                      warnings=outcome["warnings"])
    path = manifest.save(folder)
    for a in manifest.artifacts:
        manifest.artifact_file(folder, a)
    return path

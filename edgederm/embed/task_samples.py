"""What differs per task in a kit's generated code: one table keyed by (task name, language).

The shared templates (``EdgeDermModel.kt``, ``EdgeDermModel.swift``) leave ``{{TASK_SPEC}}``,
``{{TASK_INIT}}`` and ``{{TASK_CODE}}`` slots; a task fills them with its constants (labels
and operating points, or the mask threshold), the check its init runs and its functions
(``templates/<platform>/classify.*`` / ``segment.*``), and gives the README its one-line
call. Both Android kits (LiteRT, ExecuTorch) write Kotlin; the iOS kits write Swift, on Vision
(``swift``, Core ML) or on ExecuTorch's ``Module`` (``swift-executorch``). A new
task adds its rows here; :func:`task_sample` refuses a task without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgederm.embed import num, quoted
from edgederm.errors import EdgeDermError


@dataclass(frozen=True)
class TaskSample:
    """One task's part of a generated sample in one language."""

    code: str                    # the task's functions: a template under templates/, given {{ACTIVATION}}
    usage: str                   # the README's one-line call
    result: str                  # what a call returns, in words
    spec: Callable[[Any], str]   # manifest -> the lines of the task's constants
    init: str = ""               # lines the model's constructor runs


def operating_points(manifest) -> list[dict]:
    """The manifest's operating points that have a threshold (the ones an app applies)."""
    return [r for r in manifest.output.get("operating_points") or [] if r.get("threshold") is not None]


def kotlin_decision_spec(manifest) -> str:
    """Spec lines for the manifest's temperature and operating points (refer if P(class) >= threshold)."""
    t = manifest.output.get("temperature") or 1.0
    items = ", ".join(f"OperatingPoint({quoted(r['name'], 'kotlin')}, {manifest.classes.index(r['class'])}, "
                      f"{num(r['threshold'])}f)" for r in operating_points(manifest))
    return (f"        const val TEMPERATURE = {num(t)}f  // probabilities = softmax(logits / TEMPERATURE)\n"
            f"        val OPERATING_POINTS = arrayOf<OperatingPoint>({items})  // from the manifest: refer if "
            "probabilities[classIndex] >= threshold")


def swift_decision_spec(manifest) -> str:
    """Spec lines for the manifest's temperature and operating points (refer if P(class) >= threshold)."""
    t = manifest.output.get("temperature") or 1.0
    items = ", ".join(f"(name: {quoted(r['name'])}, label: {quoted(r['class'])}, threshold: {num(r['threshold'])})"
                      for r in operating_points(manifest))
    return (f"    static let temperature: Float = {num(t)}  // probabilities = softmax(logits / temperature)\n"
            f"    static let operatingPoints: [(name: String, label: String, threshold: Float)] = [{items}]"
            "  // from the manifest: refer if P(label) >= threshold")


def kotlin_labels_spec(manifest) -> str:
    labels = ", ".join(quoted(c, "kotlin") for c in manifest.classes)
    return f"        val LABELS = arrayOf({labels})  // output order\n" + kotlin_decision_spec(manifest)


def kotlin_mask_spec(manifest) -> str:
    out = manifest.output
    return f"        const val THRESHOLD = {num(out['threshold'])}f  // {out['activation']}(logit) > THRESHOLD marks lesion"


def swift_labels_spec(manifest) -> str:
    return (f"    static let labels: [String] = [{', '.join(quoted(c) for c in manifest.classes)}]  // output order\n"
            + swift_decision_spec(manifest))


def swift_mask_spec(manifest) -> str:
    out = manifest.output
    return f"    static let threshold: Float = {num(out['threshold'])}  // {out['activation']}(logit) > threshold marks lesion"


# the shipped labels.txt must be the labels the code was generated with
KOTLIN_LABELS_CHECK = (
    '        val shipped = context.assets.open(Spec.LABELS_FILE).bufferedReader().readLines().filter { it.isNotBlank() }\n'
    '        check(shipped == Spec.LABELS.toList()) { "${Spec.LABELS_FILE} differs from Spec.LABELS: model and code are from different exports" }')

SWIFT_LABELS_CHECK = (
    '        if let url = Bundle.main.url(forResource: "labels", withExtension: "txt") {\n'
    '            let shipped = try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \\.isNewline).map(String.init)\n'
    '            if shipped != EdgeDermSpec.labels {\n'
    '                throw EdgeDermModelError.labelsMismatch("labels.txt differs from EdgeDermSpec.labels: model and code are from different exports")\n'
    '            }\n'
    '        }')

TASK_SAMPLES: dict[tuple[str, str], TaskSample] = {
    ("classification", "kotlin"): TaskSample(
        "android/classify.kt", "val p = model.classify(bitmap)   // p.label, p.probability, p.probabilities (LABELS order)",
        "a label with its probability", kotlin_labels_spec, init=KOTLIN_LABELS_CHECK),
    ("segmentation", "kotlin"): TaskSample(
        "android/segment.kt", "val mask = model.segment(bitmap)  // draw mask.overlay() scaled over model.fit(bitmap)",
        "a lesion mask", kotlin_mask_spec),
    ("classification", "swift"): TaskSample(
        "ios/classify.swift", "let ranked = try model.classify(cgImage)  // [(label, probability)], most probable first",
        "labels with probabilities", swift_labels_spec),
    ("segmentation", "swift"): TaskSample(
        "ios/segment.swift", "let mask = try model.segment(cgImage)     // mask.overlay() is a CGImage of the model input frame",
        "a lesion mask", swift_mask_spec),
    ("classification", "swift-executorch"): TaskSample(
        "ios_executorch/classify.swift",
        "let p = try model.classify(cgImage)   // p.label, p.probability, p.probabilities (labels order), p.decisions",
        "a label with its probability", swift_labels_spec, init=SWIFT_LABELS_CHECK),
    ("segmentation", "swift-executorch"): TaskSample(
        "ios_executorch/segment.swift",
        "let mask = try model.segment(cgImage)  // draw mask.overlay() scaled over model.fit(cgImage)",
        "a lesion mask", swift_mask_spec),
}


def task_sample(task: str, language: str) -> TaskSample:
    """The ``language`` sample pieces of ``task``; an error that says so for a task without them."""
    try:
        return TASK_SAMPLES[task, language]
    except KeyError:
        raise EdgeDermError(f"the {language} app sample has no code for task {task!r} yet: "
                            "use --platform web, or add its rows to edgederm/embed/task_samples.py") from None

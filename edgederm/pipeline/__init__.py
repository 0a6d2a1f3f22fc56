"""``edgederm run RECIPE.yaml``: the whole road from a declarative recipe, resumable, sweepable.

A recipe names one or more models and the stages to take them through::

    name: lite0_edge
    out: runs/lite0_edge            # default: runs/<name>
    data: null                      # data root (default: $EDGEDERM_DATA, ../shared/data)
    models:
      - checkpoint: ~/.cache/edgederm/checkpoints/lite0_derm7.safetensors
      - recipe: mnv3l_derm7         # a training recipe: trained first if its checkpoint is missing
    prune: {sparsity: 0.3, finetune_epochs: 1}             # optional
    export: {formats: [onnx, tflite, coreml], verify_images: 128}
    quantize: {schemes: [int8], formats: [tflite, onnx]}   # optional
    bench: {threads: [1, 2], images: null, runs: 50}   # or false: stop after quantize
    report: true

Stages run in order per model: train -> prune -> export -> quantize -> bench -> report. Each
stage records a key (hash of its settings and of its input's fingerprint) and its output's
fingerprint under ``<out>/<model>/.stages/``; a stage whose key is unchanged and whose output
is still there with the same fingerprint is reused, not recomputed. Several models run in
parallel processes (``--jobs``) or as Ray tasks on a cluster (``--ray ADDRESS``); a sweep report
ranks the Pareto front of gate-passed rows across all of them.

One idea per module: ``recipe_file`` (reading and checking a recipe into a ``RunRecipe``, one
``ModelJob`` per model), ``stage_cache`` (what makes a run resumable), ``model_job`` (one model's road),
``sweep`` (many models: processes or Ray), ``ranking`` (the sweep report).
"""

from edgederm.pipeline.model_job import run_job
from edgederm.pipeline.ranking import sweep_report
from edgederm.pipeline.recipe_file import BUILTIN, STAGES, ModelJob, RunRecipe, load_recipe, model_name
from edgederm.pipeline.stage_cache import StageCache, StageRecord, digest, run_stage
from edgederm.pipeline.sweep import run_on_ray, run_recipe

__all__ = ["BUILTIN", "STAGES", "ModelJob", "RunRecipe", "StageCache", "StageRecord", "digest", "load_recipe",
           "model_name", "run_job", "run_on_ray", "run_recipe", "run_stage", "sweep_report"]

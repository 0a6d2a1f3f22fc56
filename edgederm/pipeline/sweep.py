"""Many models of one recipe: in order, in parallel processes, or as Ray tasks; then the sweep report."""

from __future__ import annotations

from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.pipeline.model_job import run_job
from edgederm.pipeline.ranking import sweep_report
from edgederm.pipeline.recipe_file import ModelJob, RunRecipe


def run_recipe(recipe: RunRecipe, jobs: int = 1, ray_address: str | None = None) -> list[dict]:
    """Run every model of the recipe; in parallel processes, or as Ray tasks when ``ray_address`` is given."""
    for m in recipe.models:  # before any folder is made: a typo must not leave empty model folders behind
        if "checkpoint" in m and not Path(str(m["checkpoint"])).expanduser().exists():
            raise EdgeDermError(f"recipe {recipe.name}: checkpoint {m['checkpoint']} not found: fix the 'checkpoint:' path")
    all_jobs = [recipe.job(m) for m in recipe.models]
    if ray_address:
        summaries = run_on_ray(all_jobs, ray_address)
    elif jobs > 1 and len(all_jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing

        # spawn, not fork: torch and TensorFlow state does not survive a fork safely.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            summaries = list(pool.map(run_job, all_jobs))
    else:
        summaries = [run_job(j) for j in all_jobs]
    if len(summaries) > 1:
        sweep_report(recipe, summaries)
    return summaries


def run_on_ray(all_jobs: list[ModelJob], address: str) -> list[dict]:
    """One Ray task per model; ``address`` is a cluster address, ``auto``, or ``local`` for a fresh local one."""
    try:
        import ray
    except ImportError:
        raise EdgeDermError("--ray needs the 'ray' package: pip install ray") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            raise EdgeDermError(f"--ray {address}: no Ray cluster answered ({type(e).__name__}); start one (ray start "
                                "--head), or use --ray local or --jobs N") from None
    task = ray.remote(num_cpus=1)(run_job)
    return ray.get([task.remote(j) for j in all_jobs])

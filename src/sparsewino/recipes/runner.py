"""Run a recipe stage by stage in a run directory; every finished step is saved, so runs resume.

Run directory::

    <run_dir>/recipe.yaml          the recipe as run (defaults filled in; its identity is checked on reruns)
    <run_dir>/metrics.jsonl        training/evaluation metrics, one JSON record per line
    <run_dir>/results.json         one row per finished step (accuracy, sparsity, counts, speed)
    <run_dir>/model.pt             the latest model (architecture record + pruned state dict)
    <run_dir>/stages/NN-name/      per-stage step states and mid-training checkpoints
    <run_dir>/report/              summary.md, results.csv/json, PNG plots (report stage)

A rerun of the same recipe in the same directory skips every finished step and continues a
stage that was interrupted (mid-epoch training resumes from its checkpoint). "The same" means
the same :func:`~sparsewino.recipes.schema.recipe_identity`: what the user wrote, ignoring
values at their defaults and settings that do not change results (data location, threads,
device), so upgrades that add defaulted fields keep resuming. A different recipe in a run
directory that has finished steps is refused (the message lists what changed) unless
``fresh=True``, which deletes the files of the previous run (only in a directory the runner
created: :mod:`.rundir`); a directory where nothing finished (a run that failed at start,
e.g. dataset not found) is taken over by the new recipe.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import engine
from ..engine.compile import REDUCED_WARN_ERROR
from ..files import write_text_atomic
from ..prune import PruneContext, PruningCallback, method_options, prune_model
from ..schema import ConfigError
from ..timing import busy_warning, describe_speedup
from ..train import DistContext, MetricsLog, TrainConfig, evaluate, fit, init_distributed
from ..train.checkpoint import CheckpointError, NotACheckpointError, load_checkpoint
from ..train.distributed import barrier
from .architecture import apply_transform, build_model, load_into, load_model, new_architecture, save_model
from .data_setup import RecipeData, prepare_data
from .measure import benchmark, sparsity_summary
from .progress import RunClock, stage_label
from .rundir import (
    RunDirectoryError,
    check_takeover,
    clear_run_dir,
    create_run_dir,
    is_run_dir,
    locked_run_dir,
)
from .schema import (
    BenchmarkStage,
    CompileStage,
    ConvertStage,
    EvaluateStage,
    PruneStage,
    Recipe,
    ReportStage,
    TrainStage,
    identity_changes,
    parse_recipe,
    recipe_identity,
    recipe_to_dict,
)

__all__ = ["run_recipe", "last_stage", "RunResult", "RunDirectoryError"]


@dataclass
class RunResult:
    """What :func:`run_recipe` produced."""

    run_dir: Path
    rows: list[dict[str, Any]]
    report: Path | None
    seconds: float
    stages_run: list[str] = field(default_factory=list)


def _yaml_dump(data: Any) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


class _Run:
    """State shared by the stages of one recipe run."""

    def __init__(self, recipe: Recipe, run_dir: Path, ctx: DistContext, progress: bool,
                 log: Callable[[str], None]) -> None:
        self.recipe, self.run_dir, self.ctx, self.progress = recipe, run_dir, ctx, progress
        self.log = log if ctx.is_main else (lambda message: None)
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=ctx.is_main)
        self.data: RecipeData = prepare_data(recipe.data, ctx, recipe.seed)
        self.test_loader = self.data.test_loader()
        self.rows: list[dict[str, Any]] = []
        self.compiled: nn.Module | None = None
        self._teacher: nn.Module | None = None
        self._count_inputs: torch.Tensor | None = None
        self.done: tuple[int, int, bool] = (-1, -1, True)       # (stage, unit, stage finished)
        self.clock = RunClock()                                  # training speed: time left
        self.architecture = new_architecture(recipe.model.name, recipe.model.args,
                                             self.data.in_channels, self.data.num_classes)
        torch.manual_seed(recipe.seed)
        self.model = build_model(self.architecture).to(ctx.device)
        if recipe.model.checkpoint:
            self._load_initial_weights(recipe.model.checkpoint)

    # ------------------------------------------------------------------ persistence
    def _load_initial_weights(self, path: str, model: nn.Module | None = None) -> None:
        file = Path(path)
        try:
            content = load_checkpoint(file)
        except NotACheckpointError:                     # a plain state_dict file
            content = {"model": torch.load(file, map_location="cpu", weights_only=True)}
        if "model" not in content:
            raise CheckpointError(f"model.checkpoint {file} holds no model weights (no 'model' entry)")
        state = content["model"]
        load_into(self.model if model is None else model, state, f"model.checkpoint {file}")

    def teacher(self) -> nn.Module:
        """The dense model distillation learns from: the one before the first prune/convert stage."""
        if self._teacher is None:
            source = dense_source(self.recipe)
            if isinstance(source, int):
                self._teacher, _ = load_model(self.stage_dir(source) / "unit-00.pt", self.ctx.device)
            else:
                torch.manual_seed(self.recipe.seed)
                self._teacher = build_model(new_architecture(
                    self.recipe.model.name, self.recipe.model.args, self.data.in_channels,
                    self.data.num_classes)).to(self.ctx.device)
                self._load_initial_weights(source, self._teacher)
        return self._teacher

    def stage_dir(self, index: int) -> Path:
        return self.run_dir / "stages" / f"{index:02d}-{self.recipe.stages[index].name}"

    def save_unit(self, index: int, unit: int, finished: bool) -> None:
        """Persist the model and the rows after a finished step (rank 0)."""
        self.done = (index, unit, finished)
        if self.ctx.is_main:
            state = {"stage": index, "unit": unit, "finished": finished, "rows": self.rows,
                     "input_shape": list(self.data.input_shape())}
            save_model(self.stage_dir(index) / f"unit-{unit:02d}.pt", self.model, self.architecture, **state)
            save_model(self.run_dir / "model.pt", self.model, self.architecture, **state)
            write_text_atomic(self.run_dir / "results.json", json.dumps(self.rows, indent=1))
            # the step state now holds the trained weights: its training checkpoint is redundant
            (self.stage_dir(index) / f"unit-{unit:02d}-train.pt").unlink(missing_ok=True)
        barrier(self.ctx)

    def restore(self) -> None:
        """Continue after the latest saved step, if any."""
        latest = None
        for path in (self.run_dir / "stages").glob("*/unit-*.pt"):
            try:
                stage, unit = int(path.parent.name[:2]), int(path.stem[5:])
            except ValueError:
                continue
            if stage < len(self.recipe.stages) and (latest is None or (stage, unit) > latest[0]):
                latest = ((stage, unit), path)
        if latest is None:
            return
        self.model, content = load_model(latest[1], self.ctx.device)
        self.architecture = content["architecture"]
        self.rows = list(content["rows"])
        self.done = (content["stage"], content["unit"], content["finished"])
        self.log(f"resuming {self.run_dir} after stage {content['stage']} "
                 f"({self.recipe.stages[content['stage']].name}) step {content['unit']}")

    # ------------------------------------------------------------------ helpers
    def measure(self, evaluation: dict[str, float] | None = None) -> dict[str, Any]:
        """Accuracy (evaluated unless given) and sparsity/multiplications of the current model."""
        evaluation = evaluation or evaluate(self.model, self.test_loader, self.ctx, self.progress)
        return {"accuracy": evaluation["accuracy"], "loss": evaluation["loss"],
                **sparsity_summary(self.model, self.data.input_shape(), self.recipe.tile,
                                   inputs=self.count_inputs())}

    def count_inputs(self, count: int = 32) -> torch.Tensor:
        """A fixed batch of test images for activation-dependent multiplication counts."""
        if self._count_inputs is None:
            self._count_inputs = self.data.test_images(count).to(self.ctx.device)
        return self._count_inputs

    def add_row(self, stage: Any, step: str, values: dict[str, Any], seconds: float) -> dict[str, Any]:
        row = {"stage": stage.name, "kind": stage.kind, "step": step, **values,
               "seconds": round(seconds, 2)}
        self.rows.append(row)
        self.metrics.write(event="result", **{k: v for k, v in row.items()
                                              if not isinstance(v, (dict, list))})
        parts = [stage_label(stage) + (f" [{step}]" if step else "")]
        if row.get("accuracy") is not None:
            parts.append(f"accuracy {100 * row['accuracy']:.2f}%")
        if row.get("winograd_sparsity") is not None:
            parts.append(f"Winograd sparsity {100 * row['winograd_sparsity']:.1f}%")
        if row.get("reduction_vs_direct") is not None:
            parts.append(f"mults /{row['reduction_vs_direct']:.2f}")
        if row.get("reduction_dynamic") is not None:
            parts.append(f"with activation sparsity /{row['reduction_dynamic']:.2f}")
        if row.get("speedup_vs_dense") is not None:
            parts.append(f"compiled speed-up {describe_speedup(row)}")
        parts.append(f"({seconds:.0f} s)")
        self.log("  " + ", ".join(parts))
        return row

    def fit(self, config: TrainConfig, stage: Any, unit: int, callbacks: list[Any] = ()) -> Any:
        loader = self.data.train_loader(config.batch_size, config.seed + self.recipe.seed)
        checkpoint = self.stage_dir(stage_index(self, stage)) / f"unit-{unit:02d}-train.pt"
        if checkpoint.is_file():
            # an interrupted fine-tune that pruned while training (gradual, native) saved masks
            # the rebuilt model does not have yet: add them before fit() resumes strictly
            load_into(self.model, load_checkpoint(checkpoint, self.ctx.device)["model"],
                      f"checkpoint {checkpoint}")
        start = time.perf_counter()
        result = fit(self.model, loader, config, eval_loader=self.test_loader, callbacks=list(callbacks),
                     ctx=self.ctx, checkpoint=checkpoint,
                     teacher=self.teacher() if config.distill is not None else None,
                     metrics=self.metrics, progress=self.progress, stage=stage.name,
                     extra_state={"architecture": self.architecture})
        self.clock.record(time.perf_counter() - start, result.steps - (result.resumed_at_step or 0))
        return result

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.data.train_loader(batch_size, 0))


def dense_source(recipe: Recipe) -> int | str:
    """Where a recipe's dense model is: the index of its last train stage before the first prune or
    convert stage, else its ``model.checkpoint``.

    Raises:
        ConfigError: there is neither (nothing to distil from).
    """
    first = next((i for i, s in enumerate(recipe.stages) if s.kind in ("prune", "convert")),
                 len(recipe.stages))
    trained = [i for i, s in enumerate(recipe.stages[:first]) if isinstance(s, TrainStage)]
    if trained:
        return trained[-1]
    if recipe.model.checkpoint:
        return recipe.model.checkpoint
    raise ConfigError("distill needs a dense model to learn from: a train stage before the first "
                      "prune/convert stage, or model.checkpoint")


def stage_index(run: _Run, stage: Any) -> int:
    return next(i for i, s in enumerate(run.recipe.stages) if s is stage)


# ---------------------------------------------------------------------------- stages
def _train(run: _Run, stage: TrainStage, first_unit: int) -> None:
    start = time.perf_counter()
    result = run.fit(stage.config, stage, 0)
    run.add_row(stage, "", {**run.measure(result.evaluation), "epochs": result.epochs},
                time.perf_counter() - start)
    run.save_unit(stage_index(run, stage), 0, True)


def _prune_options(run: _Run, stage: PruneStage) -> dict[str, Any]:
    """The method's keyword arguments: its options from the recipe, completed from the run."""
    context = PruneContext(tile=run.recipe.tile, seed=run.recipe.seed, model=run.model,
                           validation_batches=run.data.validation_batches)
    return method_options(stage.spec, stage.options, context)


def _prune(run: _Run, stage: PruneStage, first_unit: int) -> None:
    index = stage_index(run, stage)
    selection = dict(overrides=stage.overrides or None, include=stage.include, exclude=stage.exclude)
    if stage.spec.trains or stage.gradual is not None:
        start = time.perf_counter()
        steps = len(run.data.train_loader(stage.finetune.batch_size, 0))
        if stage.spec.trains:
            options = _prune_options(run, stage)
            if stage.gradual is not None:                 # e.g. Li et al.'s gradual native pruning
                options["schedule"] = stage.gradual.schedule(steps)
            callback = stage.spec.callback(run.model, include=stage.include, exclude=stage.exclude,
                                           **options)
            label, target = callback.describe(), callback.target
        else:
            gradual = stage.gradual
            schedule = gradual.schedule(steps)
            callback = PruningCallback(stage.method, schedule, scope=stage.scope, **selection,
                                       **_prune_options(run, stage))
            label, target = f"gradual to {gradual.final:.2f}", gradual.final
        result = run.fit(stage.finetune, stage, 0, [callback])
        run.add_row(stage, label, {**run.measure(result.evaluation), "target": target,
                                   "epochs": result.epochs}, time.perf_counter() - start)
        run.save_unit(index, 0, True)
        return
    targets = stage.target_list()
    for unit, target in enumerate(targets):
        if unit < first_unit:
            continue
        start = time.perf_counter()
        prune_model(run.model, stage.method, target, scope=stage.scope, **selection,
                    **_prune_options(run, stage))
        label = (f"density {1 - target:.2f}" if stage.densities is not None else f"target {target:.2f}")
        values: dict[str, Any] = {"target": target}
        if stage.evaluate_after_pruning or stage.finetune is None:
            pruned = run.measure()
            if stage.finetune is not None:
                values["accuracy_before_finetune"] = pruned["accuracy"]
            else:
                values.update(pruned)
        if stage.finetune is not None:
            result = run.fit(stage.finetune, stage, unit)
            values = {**values, **run.measure(result.evaluation), "epochs": result.epochs}
        run.add_row(stage, label, values, time.perf_counter() - start)
        run.save_unit(index, unit, unit == len(targets) - 1)


def _convert(run: _Run, stage: ConvertStage, first_unit: int) -> None:
    start = time.perf_counter()
    tile = stage.tile or run.recipe.tile
    selection = dict(include=stage.include, exclude=stage.exclude, decompose=stage.decompose)
    if stage.points is not None:
        selection["points"] = stage.resolved_points(tile)
    if stage.winograd_relu:
        report = apply_transform(run.model, run.architecture, "winograd_relu", tile=tile, **selection)
    else:
        if stage.low_rank is not None:
            selection["low_rank"] = stage.low_rank
        report = apply_transform(run.model, run.architecture, "convert", tile=tile, domain=stage.domain,
                                 **selection)
    converted = len(report.converted)
    run.model.to(run.ctx.device)
    into = ("Winograd-ReLU" if stage.winograd_relu else f"low-rank (rank {stage.low_rank})"
            if stage.low_rank is not None else stage.domain)
    run.log(f"  convert: {converted} convolution(s) -> {into} layers, tile {tile}")
    run.add_row(stage, f"{converted} layers", run.measure(), time.perf_counter() - start)
    run.save_unit(stage_index(run, stage), 0, True)


def _evaluate(run: _Run, stage: EvaluateStage, first_unit: int) -> None:
    start = time.perf_counter()
    run.add_row(stage, "", run.measure(), time.perf_counter() - start)
    run.save_unit(stage_index(run, stage), 0, True)


def _compile_model(run: _Run, stage: CompileStage | None = None) -> nn.Module:
    options = dict(stage.options) if stage is not None else {}
    run.model.eval()
    run.compiled = engine.compile(run.model, **options)
    return run.compiled


def _compile(run: _Run, stage: CompileStage, first_unit: int) -> None:
    start = time.perf_counter()
    compiled = _compile_model(run, stage)
    values: dict[str, Any] = {}
    if stage.check:
        images = run.data.test_images(64).to(run.ctx.device)
        with torch.no_grad():
            reference, result = run.model(images), compiled(images)
        values["compiled_max_abs_error"] = float((reference - result).abs().max())
        # every test image on this process (compile runs on rank 0 only)
        values["compiled_accuracy"] = evaluate(compiled, run.data.test_loader(whole=True),
                                               DistContext(device=run.ctx.device))["accuracy"]
        scale = float(reference.abs().max()) or 1.0
        # bf16 products round by design (engine.compile's REDUCED_WARN_ERROR); fp32 must agree.
        tolerance = REDUCED_WARN_ERROR["bf16"] if stage.options.get("precision") == "bf16" \
            else 1e-3
        if values["compiled_max_abs_error"] > tolerance * scale:
            run.log(f"  warning: compiled model differs from the model by "
                    f"{values['compiled_max_abs_error']:.3g} (max |output| {scale:.3g})")
    run.add_row(stage, "", values, time.perf_counter() - start)
    run.save_unit(stage_index(run, stage), 0, True)


def _benchmark(run: _Run, stage: BenchmarkStage, first_unit: int) -> None:
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if stage.threads:
        torch.set_num_threads(stage.threads)
    try:
        images = run.data.test_images(stage.batch_size).to(run.ctx.device)
        compiled = run.compiled if run.compiled is not None else _compile_model(run)
        values: dict[str, Any] = {"batch_size": int(images.shape[0]), "threads": torch.get_num_threads()}
        torch.manual_seed(0)                             # the dense model's initialisation
        values.update(benchmark(run.architecture, run.model, compiled, images, stage.warmup, stage.repeats))
    finally:
        torch.set_num_threads(previous_threads)
    run.add_row(stage, f"batch {values['batch_size']}, {values['threads']} threads", values,
                time.perf_counter() - start)
    if busy_warning(values):
        run.log(f"  {busy_warning(values)}")
    run.save_unit(stage_index(run, stage), 0, True)


def _report(run: _Run, stage: ReportStage, first_unit: int) -> Path | None:
    if not run.ctx.is_main:
        return None
    from ..report import write_report
    path = write_report(run.run_dir / "report", run.rows, model=run.model,
                        input_shape=run.data.input_shape(), tile=run.recipe.tile,
                        recipe=run.recipe, plots=stage.plots)
    run.log(f"  report: {path}")
    return path


_HANDLERS = {"train": _train, "finetune": _train, "prune": _prune, "convert": _convert,
             "evaluate": _evaluate, "compile": _compile, "benchmark": _benchmark}
_MAIN_ONLY = ("compile", "benchmark")


def _has_progress(run_dir: Path) -> bool:
    """Whether a step finished or a training checkpoint was written in ``run_dir``."""
    return any((run_dir / "stages").glob("*/unit-*.pt"))


def _check_identity(recipe: Recipe, run_dir: Path, log: Callable[[str], None]) -> None:
    """Refuse a run directory of a different recipe, unless nothing in it finished yet."""
    from .loading import read_recipe_data
    try:
        before = parse_recipe(read_recipe_data(run_dir / "recipe.yaml"), source=str(run_dir / "recipe.yaml"))
    except ConfigError as exc:
        before, unreadable = None, exc
    if before is not None and recipe_identity(before) == recipe_identity(recipe):
        return
    if not _has_progress(run_dir):
        log(f"{run_dir}: nothing had finished there; starting it with this recipe")
        for name in ("metrics.jsonl", "results.json", "model.pt"):
            (run_dir / name).unlink(missing_ok=True)
        return
    if before is None:
        raise RunDirectoryError(f"{run_dir}/recipe.yaml cannot be read by this version of sparsewino "
                                f"({unreadable}); pass --fresh to start over or --run-dir to use "
                                "another directory")
    changes = "; ".join(identity_changes(before, recipe))
    raise RunDirectoryError(f"{run_dir} holds a run of a different recipe; pass --fresh to replace it "
                            f"or --run-dir to use another directory (changed: {changes})")


def last_stage(recipe: Recipe, until: str | int | None = None) -> int:
    """Index of the last stage to run: ``until`` (a stage name or 0-based index), else the last.

    Raises:
        ConfigError: no such stage (the message lists them).
    """
    names = [s.name for s in recipe.stages]
    if until is None:
        return len(names) - 1
    if isinstance(until, int) or (isinstance(until, str) and until.isdigit()):
        if not 0 <= int(until) < len(names):
            raise ConfigError(f"--until {until}: the recipe has stages 0..{len(names) - 1}")
        return int(until)
    if until not in names:
        raise ConfigError(f"--until {until!r}: no such stage; stages: {', '.join(names)}")
    return names.index(until)


def run_recipe(recipe: Recipe, run_dir: str | Path | None = None, *, fresh: bool = False,
               until: str | int | None = None, progress: bool = True,
               log: Callable[[str], None] = print, ctx: DistContext | None = None) -> RunResult:
    """Run ``recipe``'s stages in order in ``run_dir`` (default ``runs/<recipe name>``).

    Args:
        recipe: a validated :class:`~sparsewino.recipes.Recipe`.
        run_dir: output directory; an existing one for the same recipe is resumed.
        fresh: delete the files of a previous run in ``run_dir`` first (refused unless the
            runner created the directory; other files are kept).
        until: stop after this stage (name or 0-based index).
        progress: tqdm bars (terminal only).
        log: where progress lines go (``print``; pass ``lambda s: None`` to silence).
        ctx: distributed context (default: :func:`~sparsewino.train.init_distributed`, so the
            same call works under ``torchrun``).

    Returns:
        :class:`RunResult` with the rows of results and the report path (if a report stage ran).

    Raises:
        RunDirectoryError: ``run_dir`` holds a run of a different recipe, or ``fresh`` was
            asked for a directory the runner did not create.
        DatasetNotFoundError, CheckpointError, ConfigError: with clear messages.

    Examples:
        >>> result = run_recipe(load_recipe("fashion_mnist_spatial_winograd"))   # doctest: +SKIP
        >>> result.report                                               # doctest: +SKIP
        PosixPath('runs/fashion_mnist_spatial_winograd/report/summary.md')
    """
    started = time.perf_counter()
    ctx = ctx or init_distributed(recipe.device)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / recipe.name
    last = last_stage(recipe, until)
    with contextlib.ExitStack() as hold:
        if ctx.is_main:
            check_takeover(run_dir, fresh=fresh)     # new, empty or ours: never a user's folder
            hold.enter_context(locked_run_dir(run_dir))
            if fresh and is_run_dir(run_dir):
                clear_run_dir(run_dir)
            saved = run_dir / "recipe.yaml"
            if saved.is_file():
                _check_identity(recipe, run_dir, log)
            create_run_dir(run_dir)
            write_text_atomic(saved, _yaml_dump(recipe_to_dict(recipe)))
        barrier(ctx)
        return _run_stages(recipe, run_dir, last, ctx, progress, log, started)


def _run_stages(recipe: Recipe, run_dir: Path, last: int, ctx: DistContext, progress: bool,
                log: Callable[[str], None], started: float) -> RunResult:
    """The stages of :func:`run_recipe` (``run_dir`` prepared, its lock held by the main rank)."""
    run = _Run(recipe, run_dir, ctx, progress, log)
    run.restore()
    report = None
    stages_run = []
    for index, stage in enumerate(recipe.stages[:last + 1]):
        done_stage, done_unit, finished = run.done
        if index < done_stage or (index == done_stage and finished):
            if isinstance(stage, ReportStage):
                report = _report(run, stage, 0)
            continue
        first_unit = done_unit + 1 if index == done_stage else 0
        run.log(f"[{index + 1}/{len(recipe.stages)}] {stage_label(stage)}"
                + run.clock.describe_left(recipe.stages[index:last + 1], run.steps_per_epoch, first_unit))
        stages_run.append(stage.name)
        if isinstance(stage, ReportStage):
            report = _report(run, stage, first_unit)
            continue
        if stage.kind in _MAIN_ONLY and not ctx.is_main:
            run.done = (index, 0, True)
            barrier(ctx)
            continue
        _HANDLERS[stage.kind](run, stage, first_unit)
    seconds = time.perf_counter() - started
    run.log(f"done in {seconds:.0f} s; results in {run_dir}" + (f", report {report}" if report else ""))
    return RunResult(run_dir, run.rows, report, seconds, stages_run)

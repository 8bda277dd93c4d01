"""Studies: recipes x seeds x overrides, every cell an ordinary resumable run, one combined report.

A study file (YAML) names a shared baseline, cells (a recipe with overrides, optionally a grid
of values) and seeds::

    name: fashion_mnist_methods
    seeds: [0, 1, 2]
    set: {data.validation: 1000}            # every run, the baseline included
    baseline: {recipe: fashion_mnist_spatial_winograd, stage: baseline}
    cells:
      - {name: magnitude, recipe: magnitude.yaml, method: "magnitude (Han et al.)"}
      - name: step2_lr
        recipe: step2.yaml
        grid: {stages.step2.finetune.optimizer.lr: [1.0e-2, 1.0e-3]}

``budget: {finetune_epochs: E}`` makes every cell prove equal terms: the fine-tuning epochs of
its pruning stages after the shared baseline (:func:`finetune_epochs`; each target of a
``targets`` list is followed by its own fine-tune) must add up to E, or the study is refused
with the cell and its sum. ``train`` stages after the baseline (e.g. Winograd-ReLU's recovery
from the conversion) are not pruning budget; :func:`finetune_epochs` reports them apart.

Study directory (default ``runs/studies/<name>``)::

    <dir>/.sparsewino-study        the study's name: a directory of another study is refused
    <dir>/study.yaml               the study as last run
    <dir>/recipes/<run>.yaml       the recipe of every run, as run
    <dir>/baseline/seed-N/         the shared baseline of seed N (an ordinary run directory)
    <dir>/cells/<cell>/seed-N/     every cell and seed (ordinary run directories)
    <dir>/logs/<run>.log           output of runs started as subprocesses (--jobs > 1)
    <dir>/report/                  the combined report (:mod:`sparsewino.report.study`)

The baseline recipe's stages up to ``stage`` are trained once per seed; each cell drops its own
stages up to the stage of that name (which must equal the baseline's: same data, model and
training) and starts from the baseline's model (``model.checkpoint``). Every run is an
ordinary :func:`~sparsewino.recipes.run_recipe` run: a finished one is skipped, an interrupted
one continues, so a study can be stopped and started again at any point. Every problem with
the study file is found before anything runs.
"""
from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import UserError
from ..files import write_text_atomic
from ..schema import ConfigError
from .loading import apply_values, find_recipe, read_recipe_data, smoke_variant
from .rundir import RunDirectoryError
from .schema import (
                     PruneStage,
                     Recipe,
                     TrainStage,
                     identity_changes,
                     parse_recipe,
                     recipe_identity,
                     recipe_to_dict,
)

__all__ = ["Study", "StudyCell", "StudyRun", "StudyError", "StudyResult", "load_study", "finetune_epochs",
           "parse_study", "run_study", "bundled_studies", "find_study", "STUDY_MARKER"]

logger = logging.getLogger("sparsewino")

#: Written into a study directory; holds the study's name.
STUDY_MARKER = ".sparsewino-study"
_STUDY_KEYS = ("name", "description", "seeds", "set", "baseline", "cells", "threads", "budget")
_CELL_KEYS = ("name", "recipe", "method", "set", "grid", "description")
_BASELINE_KEYS = ("recipe", "stage", "set")
#: What a study writes in its directory.
_STUDY_ENTRIES = (STUDY_MARKER, "study.yaml", "recipes", "baseline", "cells", "logs", "report")


class StudyError(ConfigError):
    """A study file or study directory that cannot be run as it is (the message says why)."""


def _yaml():
    import yaml
    return yaml


def _short(value: Any) -> str:
    """A value as it appears in a run name (``0.001``, ``true``, ``0.5-0.7``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))


@dataclass
class StudyRun:
    """One run of a study: a cell (or the baseline) at one seed.

    Attributes:
        cell: the cell name (``"baseline"`` for the shared baseline).
        method: the label of its method in tables and plots.
        seed: the seed.
        recipe: the validated recipe it runs.
        run_dir: its run directory.
        params: the grid values of the cell (key path -> value).
    """

    cell: str
    method: str
    seed: int
    recipe: Recipe
    run_dir: Path
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``<cell>-seed<N>``: names its recipe file and log."""
        return f"{self.cell}-seed{self.seed}"

    def status(self) -> str:
        """``finished``, ``partial`` (something finished or a checkpoint exists) or ``not started``."""
        results = self.run_dir / "results.json"
        stages = self.run_dir / "stages"
        if results.is_file():
            import json
            try:
                rows = json.loads(results.read_text())
            except ValueError:
                rows = []
            done = {row.get("stage") for row in rows}
            if all(s.name in done for s in self.recipe.stages if s.kind != "report"):
                return "finished"
        if stages.is_dir() and any(stages.glob("*/unit-*.pt")):
            return "partial"
        return "not started"


@dataclass
class StudyCell:
    """A cell of the study file: a recipe, its overrides and an optional grid."""

    name: str
    recipe: Path
    method: str
    set: dict[str, Any]
    grid: dict[str, list[Any]]
    description: str = ""

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(cell name, grid values) for every combination of the grid (one when it is empty)."""
        if not self.grid:
            return [(self.name, {})]
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            combo = dict(zip(keys, values))
            suffix = ".".join(f"{k.split('.')[-1]}-{_short(v)}" for k, v in combo.items())
            out.append((f"{self.name}.{suffix}", combo))
        return out


@dataclass
class Study:
    """A validated study: its cells, seeds and every run it will make.

    Attributes:
        name, description, seeds: from the study file.
        source: the study file.
        runs: baseline runs first (one per seed), then the cells, seed by seed.
        threads: torch threads per run (``None``: the machine's share, see :func:`run_study`).
    """

    name: str
    description: str
    seeds: list[int]
    source: Path
    cells: list[StudyCell]
    runs: list[StudyRun]
    data: dict[str, Any]
    run_dir: Path
    threads: int | None = None

    def select(self, cells: Sequence[str] | None = None, seeds: Sequence[int] | None = None
               ) -> list[StudyRun]:
        """The runs of the given cells (names or name prefixes) and seeds, baselines they need included.

        Raises:
            StudyError: a cell or seed that is not in the study.
        """
        names = {run.cell for run in self.runs}
        for cell in cells or ():
            if not any(n == cell or n.startswith(cell + ".") for n in names):
                raise StudyError(f"--cell {cell!r}: not a cell of study {self.name}; cells: "
                                 f"{', '.join(sorted(names - {'baseline'}))}")
        for seed in seeds or ():
            if seed not in self.seeds:
                raise StudyError(f"--seed {seed}: not a seed of study {self.name} ({self.seeds})")
        chosen = [run for run in self.runs
                  if (not seeds or run.seed in seeds)
                  and (not cells or run.cell == "baseline"
                       or any(run.cell == c or run.cell.startswith(c + ".") for c in cells))]
        return chosen


def bundled_studies() -> dict[str, Path]:
    """Name -> path of the study files shipped in ``sparsewino/recipes/studies/``."""
    from importlib import resources
    folder = resources.files("sparsewino.recipes") / "studies"
    if not folder.is_dir():
        return {}
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def find_study(name_or_path: str | Path) -> Path:
    """A study file: an existing path or the name of a bundled study.

    Raises:
        FileNotFoundError: neither; lists the bundled studies.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_studies()
    key = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if key in bundled and len(path.parts) == 1:
        return bundled[key]
    raise FileNotFoundError(f"study {str(name_or_path)!r} is neither a file nor a bundled study; "
                            f"bundled: {', '.join(sorted(bundled)) or 'none'}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise StudyError(f"{where}: a mapping of KEY.PATH: value expected, got {value!r}")
    return dict(value)


def _unknown(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise StudyError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _recipe_path(name: Any, base: Path, where: str) -> Path:
    if not isinstance(name, str) or not name:
        raise StudyError(f"{where}.recipe: a recipe file or bundled recipe name expected, got {name!r}")
    local = base / name
    if local.is_file():
        return local
    try:
        return find_recipe(name)
    except FileNotFoundError as exc:
        raise StudyError(f"{where}.recipe: {exc} (paths are relative to the study file)") from None


def _check_set(values: Mapping[str, Any], where: str) -> None:
    for key in values:
        head = key.split(".")[0]
        if head in ("seed", "name"):
            raise StudyError(f"{where}: {key!r} cannot be overridden in a study (seeds come from "
                             "'seeds', run names from the cells)")


def _stage_index(data: Mapping[str, Any], stage: str) -> int | None:
    for index, item in enumerate(data.get("stages") or []):
        if isinstance(item, Mapping) and (item.get("name") or item.get("stage")) == stage:
            return index
    return None


def finetune_epochs(recipe: Recipe) -> tuple[float, float]:
    """``(pruning fine-tune epochs, other training epochs)`` of ``recipe``'s stages: a prune stage
    fine-tunes once per target (once for ``gradual`` and for methods that prune while training);
    ``train``/``finetune`` stages count as other training."""
    pruning = other = 0.0
    for stage in recipe.stages:
        if isinstance(stage, PruneStage) and stage.finetune is not None:
            times = 1 if (stage.spec.trains or stage.gradual is not None) else len(stage.target_list())
            pruning += times * stage.finetune.epochs
        elif isinstance(stage, TrainStage):
            other += stage.config.epochs
    return pruning, other


def _check_budget(budget: Mapping[str, Any] | None, recipe: Recipe, where: str) -> None:
    if budget is None:
        return
    pruning, other = finetune_epochs(recipe)
    wanted = float(budget["finetune_epochs"])
    if abs(pruning - wanted) > 1e-9:
        raise StudyError(f"{where}: its pruning stages fine-tune {pruning:g} epochs in all, the "
                         f"study's budget is {wanted:g} (budget.finetune_epochs); equal budgets "
                         f"compare methods, not training time" + (f" (other training: {other:g} "
                                                                  "epochs)" if other else ""))


def _build(data: Mapping[str, Any], source: Path, where: str) -> Recipe:
    try:
        return parse_recipe(data, source=f"{where} ({source})")
    except ConfigError as exc:
        raise StudyError(str(exc)) from None


def parse_study(data: Mapping[str, Any], source: str | Path = "study.yaml",
                run_dir: str | Path | None = None, smoke: bool = False) -> Study:
    """Validate a study mapping and plan its runs (nothing runs).

    Args:
        data: the study file's content.
        source: its path (recipes named in it are looked up next to it first).
        run_dir: the study directory (default ``runs/studies/<name>``, ``<name>-smoke`` for a
            smoke study).
        smoke: every run on a few fake images for a few steps (each recipe's
            :func:`~sparsewino.recipes.loading.smoke_variant`): the whole study end to end in
            minutes, before spending hours on it.

    Raises:
        StudyError: unknown keys, an empty seed list, an unknown recipe, conflicting or invalid
            overrides, a cell that cannot share the baseline; the message names the key.

    Examples:
        >>> study = load_study("fashion_mnist_methods")                 # doctest: +SKIP
        >>> [run.key for run in study.runs][:2]                         # doctest: +SKIP
        ['baseline-seed0', 'baseline-seed1']
    """
    source = Path(source)
    if not isinstance(data, Mapping):
        raise StudyError(f"{source}: a study is a mapping (name, seeds, cells, ...)")
    _unknown(data, _STUDY_KEYS, str(source))
    name = data.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_.-" for c in name):
        raise StudyError(f"{source}.name: letters, digits, '_', '-' or '.' expected, got {name!r}")
    seeds = data.get("seeds")
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise StudyError(f"{source}.seeds: a non-empty list of integer seeds expected, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"{source}.seeds: {seeds} repeats a seed")
    threads = data.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise StudyError(f"{source}.threads: a positive integer expected, got {threads!r}")
    common = _mapping(data.get("set"), f"{source}.set")
    _check_set(common, f"{source}.set")
    budget = data.get("budget")
    if budget is not None:
        if not isinstance(budget, Mapping) or set(budget) != {"finetune_epochs"} or \
                not isinstance(budget["finetune_epochs"], (int, float)) or budget["finetune_epochs"] <= 0:
            raise StudyError(f"{source}.budget: {{finetune_epochs: E}} with E > 0 expected, got {budget!r}")
    base = source.parent
    root = Path(run_dir) if run_dir is not None else \
        Path("runs") / "studies" / (f"{name}-smoke" if smoke else name)
    smoked = smoke_variant if smoke else (lambda raw: raw)
    raw_cells = data.get("cells")
    if not isinstance(raw_cells, list) or not raw_cells:
        raise StudyError(f"{source}.cells: a non-empty list of cells expected")

    baseline_data = None
    baseline_stage = None
    runs: list[StudyRun] = []
    baseline = data.get("baseline")
    if baseline is not None:
        where = f"{source}.baseline"
        if not isinstance(baseline, Mapping):
            raise StudyError(f"{where}: a mapping with recipe and stage expected")
        _unknown(baseline, _BASELINE_KEYS, where)
        baseline_stage = baseline.get("stage")
        if not isinstance(baseline_stage, str):
            raise StudyError(f"{where}.stage: the name of the stage every cell shares, got "
                             f"{baseline_stage!r}")
        own = _mapping(baseline.get("set"), f"{where}.set")
        _check_set(own, f"{where}.set")
        raw = smoked(apply_values(read_recipe_data(_recipe_path(baseline.get("recipe"), base, where)),
                                  [*common.items(), *own.items()]))
        index = _stage_index(raw, baseline_stage)
        if index is None:
            raise StudyError(f"{where}.stage: the recipe has no stage {baseline_stage!r}")
        baseline_data = {**raw, "stages": list(raw["stages"][:index + 1]),
                         "name": f"{name}-baseline",
                         "description": f"shared baseline of study {name}"}
        for seed in seeds:
            recipe = _build({**baseline_data, "seed": seed}, source, where)
            runs.append(StudyRun("baseline", "baseline", seed, recipe,
                                 root / "baseline" / f"seed-{seed}"))

    cells: list[StudyCell] = []
    cell_runs: list[StudyRun] = []
    names: set[str] = set()
    for position, raw_cell in enumerate(raw_cells):
        where = f"{source}.cells[{position}]"
        if not isinstance(raw_cell, Mapping):
            raise StudyError(f"{where}: a mapping with name and recipe expected")
        _unknown(raw_cell, _CELL_KEYS, where)
        cell_name = raw_cell.get("name")
        if (not isinstance(cell_name, str) or not cell_name or cell_name == "baseline"
                or not all(c.isalnum() or c in "_-" for c in cell_name)):
            raise StudyError(f"{where}.name: letters, digits, '_' or '-' expected (not 'baseline'), "
                             f"got {cell_name!r}")
        if cell_name in names:
            raise StudyError(f"{where}.name: {cell_name!r} is used by another cell")
        names.add(cell_name)
        own = _mapping(raw_cell.get("set"), f"{where}.set")
        _check_set(own, f"{where}.set")
        for key, value in own.items():
            if key in common and common[key] != value:
                raise StudyError(f"{where}.set: {key} = {value!r} conflicts with the study's set "
                                 f"({common[key]!r}); every cell runs with the study's overrides")
        grid = _mapping(raw_cell.get("grid"), f"{where}.grid")
        _check_set(grid, f"{where}.grid")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise StudyError(f"{where}.grid.{key}: a non-empty list of values expected")
            if key in own or key in common:
                raise StudyError(f"{where}.grid.{key}: also set by {'the cell' if key in own else 'the study'}"
                                 "; give each key in one place")
        cell = StudyCell(cell_name, _recipe_path(raw_cell.get("recipe"), base, where),
                         str(raw_cell.get("method") or cell_name), own, grid,
                         str(raw_cell.get("description") or ""))
        cells.append(cell)
        template = read_recipe_data(cell.recipe)
        for variant, params in cell.variants():
            raw = smoked(apply_values(template, [*common.items(), *own.items(), *params.items()]))
            raw["name"] = f"{name}-{variant}"
            if baseline_data is not None:
                raw = _share_baseline(raw, baseline_data, baseline_stage, where)
            for seed in seeds:
                data_seed = {**raw, "seed": seed}
                if baseline_data is not None:
                    checkpoint = root / "baseline" / f"seed-{seed}" / "model.pt"
                    data_seed["model"] = {**data_seed["model"], "checkpoint": str(checkpoint.absolute())}
                recipe = _build(data_seed, source, f"{where} ({variant}, seed {seed})")
                if not smoke:
                    _check_budget(budget, recipe, f"{where} ({variant})")
                cell_runs.append(StudyRun(variant, cell.method, seed, recipe,
                                          root / "cells" / variant / f"seed-{seed}", params))
    order = {seed: i for i, seed in enumerate(seeds)}
    cell_runs.sort(key=lambda run: order[run.seed])            # seed by seed: every method early
    return Study(name, str(data.get("description") or ""), list(seeds), source, cells,
                 runs + cell_runs, dict(data), root, threads)


def _share_baseline(raw: dict[str, Any], baseline: Mapping[str, Any], stage: str,
                    where: str) -> dict[str, Any]:
    """The cell's recipe without its baseline stages, which must equal the shared baseline's."""
    if (raw.get("model") or {}).get("checkpoint"):
        raise StudyError(f"{where}: the cell sets model.checkpoint, but the study shares a baseline "
                         "(its model is the starting point); remove one of them")
    index = _stage_index(raw, stage)
    mine = {**raw, "stages": list(raw["stages"][:index + 1]) if index is not None else
            list(baseline["stages"]), "name": baseline["name"], "description": ""}
    ours = {**baseline, "description": ""}
    try:
        a, b = parse_recipe(ours), parse_recipe(mine)
    except ConfigError as exc:
        raise StudyError(f"{where}: {exc}") from None
    if recipe_identity(a) != recipe_identity(b):
        changes = "; ".join(identity_changes(a, b))
        raise StudyError(f"{where}: cannot share the study's baseline, its recipe differs up to stage "
                         f"{stage!r} ({changes}); align the recipes or the overrides")
    rest = list(raw["stages"][index + 1:]) if index is not None else list(raw["stages"])
    if not rest:
        raise StudyError(f"{where}: nothing left to run after the shared stage {stage!r}")
    return {**raw, "stages": rest}


def load_study(name_or_path: str | Path, run_dir: str | Path | None = None,
               smoke: bool = False) -> Study:
    """Read and validate a study file (a path or a bundled study name); see :func:`parse_study`."""
    path = find_study(name_or_path)
    yaml = _yaml()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML: {exc}") from None
    return parse_study(data, path, run_dir, smoke)


@dataclass
class StudyResult:
    """What :func:`run_study` did: the study directory, each run's status and the report."""

    run_dir: Path
    status: dict[str, str]
    failed: dict[str, str]
    report: Path | None
    seconds: float


def _check_directory(study: Study, root: Path, runs: Sequence[StudyRun]) -> None:
    """Refuse another study's directory, and runs whose directory holds a different recipe."""
    marker = root / STUDY_MARKER
    if root.exists():
        if marker.is_file():
            owner = marker.read_text().strip()
            if owner != study.name:
                raise RunDirectoryError(f"{root} holds study {owner!r}, not {study.name!r}; choose "
                                        "another --run-dir")
        else:
            foreign = sorted(p.name for p in root.iterdir() if p.name not in _STUDY_ENTRIES)
            if foreign:
                raise RunDirectoryError(f"{root} exists and is not a sparsewino study directory (it "
                                        f"holds {', '.join(foreign[:3])}); choose another --run-dir")
    problems = []
    for run in runs:
        saved = run.run_dir / "recipe.yaml"
        if not saved.is_file():
            continue
        try:
            before = parse_recipe(read_recipe_data(saved), source=str(saved))
        except ConfigError as exc:
            problems.append(f"{run.key}: {exc}")
            continue
        if recipe_identity(before) != recipe_identity(run.recipe) and run.status() != "not started":
            problems.append(f"{run.key}: {'; '.join(identity_changes(before, run.recipe, limit=3))}")
    if problems:
        raise RunDirectoryError(f"{root}: {len(problems)} run(s) were made with a different recipe "
                                f"than the study file now gives ({' | '.join(problems[:4])}); "
                                "rename the changed cells, or delete those run directories")


def _yaml_text(recipe: Recipe) -> str:
    return _yaml().safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)


def _run_in_process(run: StudyRun, log: Callable[[str], None]) -> None:
    from .runner import run_recipe
    run_recipe(run.recipe, run.run_dir, progress=False, log=log)


#: Set for the ``sparsewino run`` processes of a study: the study's pid (see :func:`follow_parent`).
PARENT_ENV = "SPARSEWINO_PARENT_PID"


def follow_parent() -> None:
    """In a process started by a study: end when the study ends, even by ``kill -9``.

    Linux only (``prctl(PR_SET_PDEATHSIG, SIGTERM)``); if the study already ended before this
    ran, exit at once. Elsewhere nothing happens.
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:
        raise SystemExit(f"sparsewino: the study (pid {parent}) that started this run ended")


def _run_subprocess(run: StudyRun, recipe_file: Path, log_file: Path, threads: int) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sparsewino.cli", "--threads", str(threads), "run",
               str(recipe_file), "--run-dir", str(run.run_dir)]
    env = {**os.environ, PARENT_ENV: str(os.getpid())}      # the run ends with the study
    with open(log_file, "a", encoding="utf-8") as out:
        status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False,
                                env=env).returncode
    if status != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"exit status {status}: {tail[0] if tail else ''} (log: {log_file})")


def run_study(study: Study, *, jobs: int = 1, cells: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None, report: bool = True,
              log: Callable[[str], None] = print) -> StudyResult:
    """Run (or continue) every run of ``study`` and write the combined report.

    Finished runs are skipped and interrupted ones continue (each is an ordinary
    :func:`~sparsewino.recipes.run_recipe` run). A run that fails is reported and the others go
    on; the baselines run before the cells, and a cell as soon as its own seed's baseline has
    finished.

    Args:
        study: from :func:`load_study`; its directory (``study.run_dir``) was fixed there.
        jobs: runs at a time. With 1 they run in this process (also under ``torchrun``); with
            more, each is a ``sparsewino run`` subprocess with ``threads`` (default: CPU count
            // jobs) torch threads, logging to ``logs/``.
        cells, seeds: only these cells (names or name prefixes) and seeds (and the baselines
            they need).
        report: write the combined report afterwards (over every finished run).
        log: where progress lines go.

    Returns:
        :class:`StudyResult`.

    Raises:
        RunDirectoryError: the directory holds another study, or a run there was made with a
            different recipe.
    """
    started = time.perf_counter()
    if jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {jobs}")
    selected = study.select(cells, seeds)
    root = study.run_dir
    _check_directory(study, root, selected)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        root.mkdir(parents=True, exist_ok=True)
        (root / STUDY_MARKER).write_text(study.name + "\n")
        write_text_atomic(root / "study.yaml", _yaml().safe_dump(study.data, sort_keys=False))
        (root / "recipes").mkdir(exist_ok=True)
        for run in study.runs:
            write_text_atomic(root / "recipes" / f"{run.key}.yaml", _yaml_text(run.recipe))
    threads = study.threads or max(1, (os.cpu_count() or 1) // jobs)
    status = {run.key: run.status() for run in selected}
    failed: dict[str, str] = {}
    todo = [run for run in selected if status[run.key] != "finished"]
    log(f"study {study.name}: {len(selected)} runs, {len(selected) - len(todo)} finished, "
        f"{len(todo)} to run ({jobs} at a time) in {root}")

    # a cell waits for its own seed's baseline only (not for every baseline), so with several
    # jobs the cells of seed 0 start while the baselines of later seeds still train
    baselines_done = {run.seed: threading.Event() for run in todo if run.cell == "baseline"}

    def one(run: StudyRun) -> None:
        if run.cell == "baseline":
            try:
                run_one(run)
            finally:
                baselines_done[run.seed].set()
            return
        if run.seed in baselines_done:
            baselines_done[run.seed].wait()
        run_one(run)

    def run_one(run: StudyRun) -> None:
        if run.cell != "baseline" and status.get(f"baseline-seed{run.seed}") not in (None, "finished"):
            failed[run.key] = f"its baseline (seed {run.seed}) did not finish"
            log(f"  {run.key}: skipped, {failed[run.key]}")
            return
        begin = time.perf_counter()
        log(f"  {run.key}: {'continuing' if status[run.key] == 'partial' else 'starting'}")
        try:
            if jobs == 1:
                _run_in_process(run, lambda message: log(f"    {run.key}: {message.strip()}"))
            else:
                _run_subprocess(run, root / "recipes" / f"{run.key}.yaml", root / "logs" / f"{run.key}.log",
                                threads)
        except (UserError, RuntimeError, OSError, ValueError) as exc:
            failed[run.key] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            status[run.key] = run.status()
            log(f"  {run.key}: FAILED: {failed[run.key]}")
            return
        status[run.key] = run.status()
        log(f"  {run.key}: {status[run.key]} ({time.perf_counter() - begin:.0f} s)")

    # baselines first in the queue: a worker takes a cell only once every baseline has started,
    # so a waiting cell never holds the worker its baseline needs
    ordered = [r for r in todo if r.cell == "baseline"] + [r for r in todo if r.cell != "baseline"]
    if jobs == 1:
        for run in ordered:
            one(run)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, ordered))
    path = None
    if report and main:
        from ..report.study import write_study_report
        path = write_study_report(study, root / "report")
        log(f"report: {path}")
    return StudyResult(root, status, failed, path, time.perf_counter() - started)

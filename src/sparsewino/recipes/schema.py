"""Recipe schema: data, model and ordered stages, validated with messages that name the key."""
from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from ..prune.methods.base import METHODS, MethodSpec, option_fields, validate_options
from ..prune.schedule import CubicSchedule
from ..schema import NO_RESULT_CHANGE, ConfigError, check_range, from_dict, to_dict, unknown_key_error
from ..train.config import TrainConfig

__all__ = ["Recipe", "DataConfig", "ModelConfig", "TrainStage", "PruneStage", "GradualConfig",
           "ConvertStage", "EvaluateStage", "CompileStage", "BenchmarkStage", "ReportStage",
           "Stage", "STAGE_KINDS", "parse_recipe", "recipe_to_dict", "method_option_names",
           "recipe_identity", "identity_changes"]

#: Names of recipes and stages (the recipe name names the run directory).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def method_option_names(spec: MethodSpec) -> list[str]:
    """The keys a prune stage of method ``spec`` may set besides the common ones."""
    return [f.name for f in option_fields(spec.options)]


@dataclass
class DataConfig:
    """Dataset and loading options.

    Attributes:
        dataset: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``imagenet`` or ``fake``.
        root: directory of the files (default: the dataset's standard location).
        batch_size: default training batch per process (stages may override).
        eval_batch_size: batch size of evaluation.
        augment: use the dataset's standard augmentation (random crop, flip where it makes sense).
        crop_padding, flip: override the standard augmentation.
        train_limit, test_limit: use only the first N images (quick runs).
        validation: training images held out (never trained on) for particle-filter pruning.
        options: dataset-specific options (``image_size`` for image folders; ``num_samples``,
            ``num_classes``, ``channels``, ``image_size`` for ``fake``).
        num_workers: processes decoding image files (image folders).
    """

    dataset: str
    root: str | None = field(default=None, metadata=NO_RESULT_CHANGE)
    batch_size: int = 128
    eval_batch_size: int = 500
    augment: bool = True
    crop_padding: int | None = None
    flip: bool | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    validation: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    num_workers: int = field(default=0, metadata=NO_RESULT_CHANGE)

    def __post_init__(self) -> None:
        from ..data.registry import dataset_spec
        dataset_spec(self.dataset)                      # unknown names fail here
        check_range("batch_size", self.batch_size, 1)
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("crop_padding", self.crop_padding, 0)
        check_range("train_limit", self.train_limit, 1)
        check_range("test_limit", self.test_limit, 1)
        check_range("validation", self.validation, 0)
        check_range("num_workers", self.num_workers, 0)


@dataclass
class ModelConfig:
    """Model by registry name, its options, and optional initial weights.

    Attributes:
        name: a name from :func:`sparsewino.models.available_models`.
        args: builder options (``widths``, ``width``, ``dropout``...).
        checkpoint: initial weights: a sparsewino checkpoint or a plain ``state_dict`` file.
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        from ..models import model_entry
        model_entry(self.name)


@dataclass
class TrainStage:
    """``train`` or ``finetune``: one :class:`~sparsewino.train.TrainConfig` run."""

    kind: str
    name: str
    config: TrainConfig


#: A gradual ramp updates the masks at least this many times, however few steps an epoch has.
MIN_GRADUAL_UPDATES = 5


@dataclass
class GradualConfig:
    """Gradual (cubic, Zhu & Gupta) pruning during the fine-tune: ``initial`` -> ``final``.

    ``begin``/``end`` are in epochs of the fine-tune; the masks are updated every
    ``every_steps`` optimizer steps, or more often where the ramp is short (a small data set):
    at least :data:`MIN_GRADUAL_UPDATES` times between ``begin`` and ``end``, and ``final`` is
    applied at ``end``.
    """

    final: float
    end: float
    begin: float = 0.0
    initial: float = 0.0
    every_steps: int = 50

    def __post_init__(self) -> None:
        check_range("final", self.final, 0, 1, high_open=True)
        check_range("initial", self.initial, 0, self.final)
        check_range("begin", self.begin, 0)
        if self.end <= self.begin:
            raise ValueError(f"end ({self.end}) must come after begin ({self.begin})")
        check_range("every_steps", self.every_steps, 1)

    def schedule(self, steps_per_epoch: int) -> CubicSchedule:
        """The cubic schedule over optimizer steps for a fine-tune of ``steps_per_epoch``."""
        begin = round(self.begin * steps_per_epoch)
        end = max(round(self.end * steps_per_epoch), begin + 1)
        every = max(1, min(self.every_steps, (end - begin) // MIN_GRADUAL_UPDATES))
        return CubicSchedule(self.final, begin=begin, end=end, initial=self.initial, every=every,
                             unit="step")


@dataclass
class PruneStage:
    """``prune``: a method, its targets, layer selection, and the fine-tune after each target.

    Exactly one way to give the target: ``amount`` (one step), ``targets`` (increasing steps,
    each followed by ``finetune``), ``densities`` (kept fractions, decreasing, for methods that
    count densities), ``gradual`` (cubic schedule during ``finetune``). A method that prunes while
    training (``native``) takes its own options instead and prunes during ``finetune``, or a
    ``gradual`` schedule (Li et al.'s gradual pruning: the threshold follows the schedule).

    The method's options (``tile``, ``ifm``, ``granularity``...) are written next to the common
    keys in YAML and held here as ``options``, an instance of the method's options dataclass
    (:attr:`~sparsewino.prune.MethodSpec.options`).
    """

    name: str
    method: str
    amount: float | None = None
    targets: list[float] | None = None
    densities: list[float] | None = None
    gradual: GradualConfig | None = None
    scope: Literal["layer", "global"] = "layer"
    include: list[str] | None = None
    exclude: list[str] | None = None
    overrides: dict[str, float] = field(default_factory=dict)
    options: Any = None
    finetune: TrainConfig | None = None
    evaluate_after_pruning: bool = False
    kind: str = "prune"

    @property
    def spec(self) -> MethodSpec:
        """The registered method."""
        return METHODS.lookup(self.method)

    def __post_init__(self) -> None:
        spec = self.spec
        if self.options is None:
            self.options = spec.options()
        elif not isinstance(self.options, spec.options):
            raise ValueError(f"options of method {self.method!r} must be a "
                             f"{spec.options.__name__}, got {type(self.options).__name__}")
        given = [k for k in ("amount", "targets", "densities", "gradual") if getattr(self, k) is not None]
        if spec.trains:
            scheduled = given == ["gradual"] and "schedule" in inspect.signature(spec.callback).parameters
            if given and not scheduled:
                raise ValueError(f"method {self.method!r} prunes during fine-tuning; remove {given} "
                                 f"(its options: {method_option_names(spec)})")
            fixed = [k for k in ("threshold", "sparsity") if getattr(self.options, k, None) is not None]
            if scheduled and fixed:
                raise ValueError(f"method {self.method!r} with gradual: prunes to the schedule's "
                                 f"sparsity; remove {fixed}")
            if not scheduled and not fixed and {"threshold", "sparsity"} <= set(method_option_names(spec)):
                raise ValueError(f"method {self.method!r} needs threshold (t0), sparsity, or a "
                                 "gradual: schedule (Li et al.'s gradual pruning)")
            if self.finetune is None:
                raise ValueError(f"method {self.method!r} prunes while training: add a finetune "
                                 "mapping")
        elif len(given) != 1:
            raise ValueError("give exactly one of amount, targets, densities or gradual "
                             f"(got {given or 'none'})")
        if self.densities is not None and not spec.densities:
            takes = [n for n in METHODS.names() if METHODS[n].densities]
            raise ValueError(f"densities (kept fractions) are for method(s) {takes}; use targets")
        for i, value in enumerate(self.target_list()):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"target {value} is impossible: sparsity targets are fractions in "
                                 "[0, 1) (1 would prune every weight)")
            if i and value < self.target_list()[i - 1]:
                raise ValueError(f"targets must not decrease (masks only grow), got {self.target_list()}")
        for key, value in self.overrides.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"override {key}: {value} is impossible (fractions in [0, 1))")
        if self.gradual is not None and self.finetune is None:
            raise ValueError("gradual pruning happens during fine-tuning: add a finetune mapping")
        if self.gradual is not None and self.finetune is not None \
                and self.gradual.end > self.finetune.epochs + 1e-9:
            raise ValueError(f"gradual.end ({self.gradual.end} epochs) is after the fine-tune ends "
                             f"({self.finetune.epochs} epochs)")

    def target_list(self) -> list[float]:
        """The sparsity targets in order (densities converted to sparsities)."""
        if self.amount is not None:
            return [self.amount]
        if self.targets is not None:
            return list(self.targets)
        if self.densities is not None:
            return [1.0 - d for d in self.densities]
        if self.gradual is not None:
            return [self.gradual.final]
        return []


@dataclass
class ConvertStage:
    """``convert``: Winograd layers (``domain``), Winograd-ReLU layers (``winograd_relu``), or
    low-rank Winograd layers (``low_rank``: W = U·V of this rank, an int or a fraction of the
    positions; Winograd domain).

    ``points``: the interpolation points of the 3×3 layers' F(tile, 3): a set name
    (``default``, ``lavin``: Lavin & Gray's, which the spatial-Winograd authors used and which
    change the importance factor matrix M̂; ``naive``) or the n − 1 finite points
    (``[0, 1, -1, 2, -2]``, ``"1/2"`` for fractions). Default: sparsewino's accurate points.
    """

    name: str
    domain: Literal["spatial", "winograd"] = "winograd"
    tile: int | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    winograd_relu: bool = False
    low_rank: int | float | None = None
    decompose: Literal["auto", "dwm", "none"] = "auto"
    points: Union[str, list[Union[int, float, str]], None] = None
    kind: str = "convert"

    def __post_init__(self) -> None:
        check_range("tile", self.tile, 1)
        from ..winograd import POINT_SETS
        if isinstance(self.points, str) and self.points not in POINT_SETS:
            raise ValueError(f"points: {self.points!r} is not a point set ({', '.join(POINT_SETS)}); "
                             "or give the list of finite points")
        if self.winograd_relu and self.domain != "winograd":
            raise ValueError("winograd_relu layers keep their weights in the Winograd domain: "
                             "use domain: winograd")
        if self.low_rank is not None:
            from ..nn.lowrank import resolve_rank
            resolve_rank(self.low_rank, 2**31, 2**31, who="low_rank")
            if self.domain != "winograd" or self.winograd_relu:
                raise ValueError("low_rank layers are Winograd-domain layers without "
                                 "Winograd-ReLU: use domain: winograd and no winograd_relu")

    def resolved_points(self, tile: int) -> list[str] | None:
        """The finite points for F(tile, 3) as strings (plain data for checkpoints), or None."""
        from ..winograd import named_points, parse_points
        if self.points is None:
            return None
        points = (named_points(self.points, tile, 3) if isinstance(self.points, str)
                  else parse_points(self.points, tile, 3))
        return [str(p) for p in points]


@dataclass
class EvaluateStage:
    """``evaluate``: test accuracy, sparsity in both domains and multiplication counts."""

    name: str
    kind: str = "evaluate"


@dataclass
class CompileStage:
    """``compile``: build the inference model with :func:`sparsewino.engine.compile`."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    check: bool = True
    kind: str = "compile"


@dataclass
class BenchmarkStage:
    """``benchmark``: median forward time of dense PyTorch, the model and the compiled model."""

    name: str
    batch_size: int = 64
    warmup: int = 3
    repeats: int = 10
    threads: int | None = None
    kind: str = "benchmark"

    def __post_init__(self) -> None:
        check_range("batch_size", self.batch_size, 1)
        check_range("warmup", self.warmup, 0)
        check_range("repeats", self.repeats, 1)
        check_range("threads", self.threads, 1)


@dataclass
class ReportStage:
    """``report``: summary.md, CSV/JSON and PNG plots in the run directory."""

    name: str
    plots: bool = True
    kind: str = "report"


Stage = Union[TrainStage, PruneStage, ConvertStage, EvaluateStage, CompileStage, BenchmarkStage,
              ReportStage]
_STAGE_CLASSES = {"prune": PruneStage, "convert": ConvertStage, "evaluate": EvaluateStage,
                  "compile": CompileStage, "benchmark": BenchmarkStage, "report": ReportStage}
STAGE_KINDS = ("train", "finetune", *_STAGE_CLASSES)
_STAGE_TYPES = tuple(_STAGE_CLASSES.values())


@dataclass
class Recipe:
    """A whole pipeline: data, model and ordered stages.

    Attributes:
        name: run name (also the default run directory ``runs/<name>``).
        description: free text shown in the report.
        seed: seed of model initialisation, data order and pruning searches.
        device: ``auto``, ``cpu``, ``cuda``...
        threads: torch CPU threads (default: torch's choice).
        tile: default Winograd output tile m (convert, step-1 pruning, statistics).
        data, model: :class:`DataConfig`, :class:`ModelConfig`.
        stages: the ordered stages.
    """

    name: str
    data: DataConfig
    model: ModelConfig
    stages: list[Stage]
    description: str = field(default="", metadata=NO_RESULT_CHANGE)
    seed: int = 0
    device: str = field(default="auto", metadata=NO_RESULT_CHANGE)
    threads: int | None = field(default=None, metadata=NO_RESULT_CHANGE)
    tile: int = 4

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must be letters, digits, '_', '-' or '.' "
                             "(it names the run directory)")
        check_range("threads", self.threads, 1)
        check_range("tile", self.tile, 1)
        if not self.stages:
            raise ValueError("stages is empty: give at least one stage")


@dataclass
class _RecipeHead(Recipe):
    """A :class:`Recipe` whose stages are still raw mappings (parsed one by one afterwards)."""

    stages: list[dict[str, Any]]


def _parse_stage(raw: Any, index: int) -> Stage:
    where = f"stages[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: each stage is a mapping with a 'stage' key, got {raw!r}")
    data = dict(raw)
    kind = data.pop("stage", None)
    if kind is None:
        raise ConfigError(f"{where}: missing 'stage' (one of {', '.join(STAGE_KINDS)})")
    if kind not in STAGE_KINDS:
        raise ConfigError(f"{where}: unknown stage {kind!r}; choose one of {', '.join(STAGE_KINDS)}")
    name = data.pop("name", None) or f"{kind}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: {name!r} must be letters, digits, '_', '-' or '.'")
    where = f"stages[{index}] ({kind} {name!r})"
    if kind in ("train", "finetune"):
        return TrainStage(kind, name, from_dict(TrainConfig, data, where))
    if "kind" in data:
        raise ConfigError(f"{where}: unknown key 'kind'")
    if kind == "prune":
        data = _split_method_options(data, where)
    return from_dict(_STAGE_CLASSES[kind], {**data, "name": name}, where)


def _split_method_options(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Move a prune stage's method options (flat keys in YAML) into its options dataclass."""
    if "options" in data:
        raise ConfigError(f"{where}: write the method's options as keys of the stage, not under "
                          "'options'")
    method = data.get("method")
    if method is None:
        raise ConfigError(f"{where}: missing required key 'method'")
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"{where}.method: must be {' or '.join(repr(n) for n in METHODS.names())}, "
                          f"got {method!r}")
    spec = METHODS[method]
    own = method_option_names(spec)
    every = {name for other in METHODS.values() for name in method_option_names(other)}
    stray = sorted(k for k in data if k in every and k not in own)
    if stray:
        raise ConfigError(f"{where}: option(s) {stray} do not apply to method {method!r} "
                          f"(its options: {own or 'none'})")
    common = [f.name for f in dataclasses.fields(PruneStage) if f.name not in ("options", "kind")]
    unknown = [k for k in data if k not in common and k not in every]
    if unknown:
        raise unknown_key_error(unknown[0], [k for k in common if k != "name"] + own, where)
    options = from_dict(spec.options, {k: data.pop(k) for k in own if k in data}, where)
    try:
        validate_options(options)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return {**data, "options": options}


_STATE_NAMES = {"conv": "plain convolutions", "spatial": "spatial-domain Winograd layers",
                "winograd": "Winograd-domain layers", "winograd_relu": "Winograd-ReLU layers"}
#: How a recipe reaches a model state a method needs (the first state the method lists).
_FIX_FOR_STATE = {"conv": "it before the convert stage to the Winograd domain",
                  "spatial": "it before the convert stage to the Winograd domain",
                  "winograd": "a convert stage with domain: winograd",
                  "winograd_relu": "a convert stage with winograd_relu: true"}


def _check_order(stages: list[Stage]) -> None:
    """Catch stages that cannot work where they stand (e.g. step 2 before a convert)."""
    state = "conv"
    names: dict[str, int] = {}
    for index, stage in enumerate(stages):
        where = f"stages[{index}] ({stage.kind} {stage.name!r})"
        if stage.name in names:
            raise ConfigError(f"{where}: name already used by stages[{names[stage.name]}]; give "
                              "each stage a unique name")
        names[stage.name] = index
        if isinstance(stage, ConvertStage):
            state = "winograd_relu" if stage.winograd_relu else stage.domain
        elif isinstance(stage, PruneStage):
            needs = stage.spec.states
            if needs and state not in needs:
                raise ConfigError(f"{where}: method {stage.method!r} cannot prune "
                                  f"{_STATE_NAMES[state]}; put {_FIX_FOR_STATE[needs[0]]} first")


def _check_points(stages: list[Stage], tile: int) -> None:
    """Interpolation points of convert stages must make an algorithm for their tile."""
    from ..winograd import algorithm
    for index, stage in enumerate(stages):
        if isinstance(stage, ConvertStage) and stage.points is not None:
            stage_tile = stage.tile or tile
            try:
                algorithm(stage_tile, 3, stage.resolved_points(stage_tile))
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"stages[{index}] (convert {stage.name!r}).points: {exc}") from None


def _check_distill(stages: list[Stage], has_checkpoint: bool) -> None:
    """Distillation learns from the dense model: it must exist before the stage that uses it."""
    first = next((i for i, s in enumerate(stages) if s.kind in ("prune", "convert")), len(stages))
    for index, stage in enumerate(stages):
        config = stage.config if isinstance(stage, TrainStage) else getattr(stage, "finetune", None)
        if config is None or config.distill is None:
            continue
        where = f"stages[{index}] ({stage.kind} {stage.name!r}).distill"
        if index < first:
            raise ConfigError(f"{where}: the teacher is the dense model before the first prune or "
                              "convert stage; this stage comes before it")
        if not has_checkpoint and not any(isinstance(s, TrainStage) for s in stages[:first]):
            raise ConfigError(f"{where}: no dense model to learn from (no train stage before the "
                              "first prune/convert stage and no model.checkpoint)")


def parse_recipe(data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping (as read from YAML) and build a :class:`Recipe`.

    Raises:
        ConfigError: unknown keys, wrong types, impossible targets, stages out of order;
            the message names the offending key (``stages[2] (prune 'step2').targets``).

    Examples:
        >>> recipe = parse_recipe(yaml.safe_load(open("recipe.yaml")))  # doctest: +SKIP
        >>> [s.kind for s in recipe.stages]                             # doctest: +SKIP
        ['train', 'prune', 'convert', 'prune', 'evaluate', 'report']
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a recipe is a mapping (name, data, model, stages), got "
                          f"{type(data).__name__}")
    model = data.get("model")
    if isinstance(model, Mapping) and "onnx" in model:   # model: {onnx: path} for the onnx entry
        rest = {key: value for key, value in model.items() if key != "onnx"}
        data = {**data, "model": {**rest, "name": "onnx",
                                  "args": {**dict(rest.get("args") or {}), "path": model["onnx"]}}}
    head = from_dict(_RecipeHead, data, source)
    stages = [_parse_stage(raw, i) for i, raw in enumerate(head.stages)]
    _check_order(stages)
    _check_points(stages, head.tile)
    _check_distill(stages, bool(head.model.checkpoint))
    return Recipe(**{**vars(head), "stages": stages})


def _identity(value: Any) -> Any:
    """``value`` as plain data without fields at their defaults or marked NO_RESULT_CHANGE."""
    if isinstance(value, TrainStage):
        return {"stage": value.kind, "name": value.name, **_identity(value.config)}
    if isinstance(value, PruneStage):                   # method options are keys of the stage
        body = {k: v for k, v in _identity_fields(value).items() if k != "options"}
        return {"stage": value.kind, **body, **_identity(value.options)}
    if dataclasses.is_dataclass(value):
        body = _identity_fields(value)
        return {"stage": value.kind, **body} if isinstance(value, _STAGE_TYPES) else body
    if isinstance(value, (list, tuple)):
        return [_identity(v) for v in value]
    if isinstance(value, dict):
        return {k: _identity(v) for k, v in value.items()}
    return value


def _identity_fields(obj: Any) -> dict[str, Any]:
    out = {}
    for item in dataclasses.fields(obj):
        if item.metadata.get("identity") is False or item.name == "kind":
            continue
        value = getattr(obj, item.name)
        default = (item.default if item.default is not dataclasses.MISSING else
                   item.default_factory() if item.default_factory is not dataclasses.MISSING else
                   dataclasses.MISSING)
        if default is not dataclasses.MISSING and value == default:
            continue
        out[item.name] = _identity(value)
    return out


def recipe_identity(recipe: Recipe) -> dict[str, Any]:
    """What identifies a run of ``recipe``: what the user wrote, without what cannot change results.

    Values equal to their defaults are left out (so an upgrade that adds a defaulted field keeps
    old runs resuming, and writing a default explicitly changes nothing), and so are fields
    marked :data:`~sparsewino.schema.NO_RESULT_CHANGE` (data location, threads, device,
    description, checkpoint and log frequency).

    Examples:
        >>> recipe = parse_recipe({"name": "r", "data": {"dataset": "fake", "root": "/data"},
        ...                        "model": {"name": "small_vgg"}, "stages": [{"stage": "evaluate"}]})
        >>> identity = recipe_identity(recipe)
        >>> identity["data"], identity["stages"]
        ({'dataset': 'fake'}, [{'stage': 'evaluate', 'name': 'evaluate'}])
    """
    return _identity(recipe)


def _flatten(node: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"stages.step1.targets": [...], ...}``: stages are named as in ``--set stages.NAME.KEY``."""
    out = {} if out is None else out
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, list) and prefix == "stages":
        for index, stage in enumerate(node):
            _flatten(stage, f"stages.{stage.get('name', index) if isinstance(stage, dict) else index}", out)
    else:
        out[prefix] = node
    return out


def identity_changes(before: Recipe, after: Recipe, limit: int = 6) -> list[str]:
    """What changed a run's identity between two recipes, one ``key.path: old -> new`` line each."""
    changed = _flatten(recipe_identity(before)), _flatten(recipe_identity(after))
    full = _flatten(recipe_to_dict(before)), _flatten(recipe_to_dict(after))
    keys = list(dict.fromkeys([*full[1], *full[0], *changed[1], *changed[0]]))     # recipe order

    def show(values: dict[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else "(not set)"

    lines = [f"{key}: {show(full[0], key)} -> {show(full[1], key)}" for key in keys
             if changed[0].get(key, ...) != changed[1].get(key, ...)]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (the YAML form, with defaults filled in)."""
    stages = []
    for stage in recipe.stages:
        if isinstance(stage, TrainStage):
            stages.append({"stage": stage.kind, "name": stage.name, **to_dict(stage.config)})
        else:
            body = to_dict(stage)
            kind = body.pop("kind")
            if isinstance(stage, PruneStage):       # method options are keys of the stage
                options = body.pop("options")
                at = list(body).index("method") + 1
                items = list(body.items())
                body = dict(items[:at] + list(options.items()) + items[at:])
            stages.append({"stage": kind, **{k: v for k, v in body.items() if v is not None}})
    head = to_dict(recipe)
    head["stages"] = stages
    return head

"""Recipe schema: data, model and ordered stages, validated with messages that name the key."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from ..train.config import TrainConfig
from ..train.schema import ConfigError, check_range, from_dict, to_dict

__all__ = ["Recipe", "DataConfig", "ModelConfig", "TrainStage", "PruneStage", "GradualConfig",
           "ConvertStage", "EvaluateStage", "CompileStage", "BenchmarkStage", "ReportStage",
           "Stage", "STAGE_KINDS", "parse_recipe", "recipe_to_dict"]

#: Names of recipes and stages (the recipe name names the run directory).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Method-specific options a prune stage may set (anything else set for the method is an error).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "magnitude": (),
    "spatial_winograd": ("tile",),
    "winograd_domain": ("ifm", "grad_power"),
    "structured": ("granularity", "importance", "stride", "include_bias", "particles", "iterations"),
    "winograd_relu": (),
    "native": ("threshold", "sparsity", "l1", "every"),
}
_ALL_OPTIONS = sorted({o for opts in METHOD_OPTIONS.values() for o in opts})


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
    root: str | None = None
    batch_size: int = 128
    eval_batch_size: int = 500
    augment: bool = True
    crop_padding: int | None = None
    flip: bool | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    validation: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0

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


@dataclass
class GradualConfig:
    """Gradual (cubic, Zhu & Gupta) pruning during the fine-tune: ``initial`` -> ``final``.

    ``begin``/``end`` are in epochs of the fine-tune; the masks are updated every
    ``every_steps`` optimizer steps.
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


@dataclass
class PruneStage:
    """``prune``: a method, its targets, layer selection, and the fine-tune after each target.

    Exactly one way to give the target: ``amount`` (one step), ``targets`` (increasing steps,
    each followed by ``finetune``), ``densities`` (Liu et al.'s kept fractions, decreasing),
    ``gradual`` (cubic schedule during ``finetune``); ``native`` takes ``threshold`` or
    ``sparsity`` instead and prunes during ``finetune``.
    """

    name: str
    method: Literal["magnitude", "spatial_winograd", "winograd_domain", "structured",
                    "winograd_relu", "native"]
    amount: float | None = None
    targets: list[float] | None = None
    densities: list[float] | None = None
    gradual: GradualConfig | None = None
    scope: Literal["layer", "global"] = "layer"
    include: list[str] | None = None
    exclude: list[str] | None = None
    overrides: dict[str, float] = field(default_factory=dict)
    tile: int | None = None
    ifm: bool | None = None
    grad_power: float | None = None
    granularity: Literal["feature_map", "kernel", "strided"] | None = None
    importance: Literal["l1", "l2", "particle_filter"] | None = None
    stride: int | None = None
    include_bias: bool | None = None
    particles: int | None = None
    iterations: int | None = None
    threshold: float | None = None
    sparsity: float | None = None
    l1: float | None = None
    every: int | None = None
    finetune: TrainConfig | None = None
    evaluate_after_pruning: bool = False
    kind: str = "prune"

    def __post_init__(self) -> None:
        allowed = METHOD_OPTIONS[self.method]
        stray = [o for o in _ALL_OPTIONS if getattr(self, o) is not None and o not in allowed]
        if stray:
            raise ValueError(f"option(s) {stray} do not apply to method {self.method!r} "
                             f"(its options: {list(allowed) or 'none'})")
        given = [k for k in ("amount", "targets", "densities", "gradual") if getattr(self, k) is not None]
        if self.method == "native":
            if given:
                raise ValueError(f"method 'native' prunes during fine-tuning by threshold; remove {given} "
                                 "and give threshold (t0) or sparsity")
            if (self.threshold is None) == (self.sparsity is None):
                raise ValueError("method 'native' needs exactly one of threshold (t0) or sparsity")
            if self.finetune is None:
                raise ValueError("method 'native' prunes while training: add a finetune mapping")
            check_range("sparsity", self.sparsity, 0, 1, high_open=True)
            check_range("threshold", self.threshold, 0)
            check_range("l1", self.l1, 0)
            check_range("every", self.every, 1)
        elif len(given) != 1:
            raise ValueError("give exactly one of amount, targets, densities or gradual "
                             f"(got {given or 'none'})")
        if self.densities is not None and self.method != "winograd_relu":
            raise ValueError("densities (kept fractions) are for method 'winograd_relu'; use targets")
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
        if self.importance == "particle_filter" and self.method != "structured":
            raise ValueError("importance 'particle_filter' is for method 'structured'")
        check_range("grad_power", self.grad_power, 0)
        check_range("tile", self.tile, 1)
        check_range("stride", self.stride, 1)
        check_range("particles", self.particles, 1)
        check_range("iterations", self.iterations, 1)

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
    """``convert``: Winograd layers (``domain``), or Winograd-ReLU layers (``winograd_relu``)."""

    name: str
    domain: Literal["spatial", "winograd"] = "winograd"
    tile: int | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    winograd_relu: bool = False
    kind: str = "convert"

    def __post_init__(self) -> None:
        check_range("tile", self.tile, 1)
        if self.winograd_relu and self.domain != "winograd":
            raise ValueError("winograd_relu layers keep their weights in the Winograd domain: "
                             "use domain: winograd")


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
    description: str = ""
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
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
    return from_dict(_STAGE_CLASSES[kind], {**data, "name": name}, where)


_STATE_NAMES = {"conv": "plain convolutions", "spatial": "spatial-domain Winograd layers",
                "winograd": "Winograd-domain layers", "winograd_relu": "Winograd-ReLU layers"}


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
            needs = {"winograd_domain": ("winograd", "winograd_relu"), "native": ("winograd", "winograd_relu"),
                     "winograd_relu": ("winograd_relu",), "spatial_winograd": ("conv", "spatial")}
            if stage.method in needs and state not in needs[stage.method]:
                fix = {"winograd_domain": "a convert stage with domain: winograd",
                       "native": "a convert stage with domain: winograd",
                       "winograd_relu": "a convert stage with winograd_relu: true",
                       "spatial_winograd": "it before the convert stage to the Winograd domain"}
                raise ConfigError(f"{where}: method {stage.method!r} cannot prune "
                                  f"{_STATE_NAMES[state]}; put {fix[stage.method]} first")


def parse_recipe(data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping (as read from YAML) and build a :class:`Recipe`.

    Raises:
        ConfigError: unknown keys, wrong types, impossible targets, stages out of order;
            the message names the offending key (``stages[2] (prune 'step2').targets``).

    Examples:
        >>> recipe = parse_recipe(yaml.safe_load(open("recipe.yaml")))
        >>> [s.kind for s in recipe.stages]
        ['train', 'prune', 'convert', 'prune', 'evaluate', 'report']
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a recipe is a mapping (name, data, model, stages), got "
                          f"{type(data).__name__}")
    head = from_dict(_RecipeHead, data, source)
    stages = [_parse_stage(raw, i) for i, raw in enumerate(head.stages)]
    _check_order(stages)
    return Recipe(**{**vars(head), "stages": stages})


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (the YAML form, with defaults filled in)."""
    stages = []
    for stage in recipe.stages:
        if isinstance(stage, TrainStage):
            stages.append({"stage": stage.kind, "name": stage.name, **to_dict(stage.config)})
        else:
            body = to_dict(stage)
            kind = body.pop("kind")
            stages.append({"stage": kind, **{k: v for k, v in body.items() if v is not None}})
    head = to_dict(recipe)
    head["stages"] = stages
    return head

"""The ``sparsewino`` command: run recipes, train/prune/convert/evaluate models, benchmark, count, inspect."""
from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Literal, Sequence

from .allocator import retain_freed_memory
from .errors import UserError
from .schema import OutOfRangeError

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  sparsewino run fashion_mnist_spatial_winograd          # the `make demo` pipeline
  sparsewino run my_recipe.yaml --set stages.baseline.epochs=1 --until step1
  sparsewino run --list                                   # bundled recipes
  sparsewino train --dataset fashion-mnist --model small_vgg --epochs 5 --output base.pt
  sparsewino prune base.pt --method spatial_winograd --amount 0.6 --exclude features.0 \\
      --dataset fashion-mnist --finetune-epochs 0.5 --output step1.pt
  sparsewino convert step1.pt --domain winograd --tile 4 --output wino.pt
  sparsewino eval wino.pt --dataset fashion-mnist
  sparsewino inspect wino.pt
  sparsewino count wino.pt
  sparsewino bench wino.pt --batch-size 64
  sparsewino export wino.pt -o model.swe --tune-shape 1x1x28x28 --tune-shape 64x1x28x28
  sparsewino bench model.swe --batch-size 64           # the artifact alone, no model class
  sparsewino report runs/fashion_mnist_spatial_winograd
  torchrun --nproc-per-node 2 -m sparsewino.cli run RECIPE   # several processes / machines
"""


class CliError(UserError):
    """A mistake in the command line itself (a missing or impossible option value): exit status 2.

    Exit statuses: 0 done; 2 the command line is wrong (argparse's errors, :class:`CliError`);
    1 the command could not do its work (missing or damaged files, invalid recipes, datasets
    not found, ...); 130 interrupted.
    """


def _count(minimum: int):
    """argparse type: an integer >= ``minimum`` (``--batch-size 0`` is an error, not ignored)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small (at least {minimum})")
        return value
    parse.__name__ = "integer"
    return parse


def _add_data_args(parser: argparse.ArgumentParser, required: bool, training: bool = True) -> None:
    """The data flags; ``training=False`` (evaluation only) hides the training ones from the
    help (still accepted, so that one set of flags works with every command)."""
    from .data.registry import available_datasets
    group = parser.add_argument_group("data")

    def shown(text: str) -> str:
        return text if training else argparse.SUPPRESS
    group.add_argument("--dataset", required=required, help=", ".join(available_datasets()))
    group.add_argument("--data-dir", help="directory of the dataset files (default: its standard place)")
    group.add_argument("--batch-size", type=int, default=128,
                       help=shown("training batch per process (128)"))
    group.add_argument("--eval-batch-size", type=int, default=500, help="evaluation batch (500)")
    group.add_argument("--train-limit", type=int, help=shown("use only the first N training images"))
    group.add_argument("--test-limit", type=int, help="use only the first N test images")
    group.add_argument("--no-augment", action="store_true", help=shown("disable random crops/flips"))


def _add_train_args(parser: argparse.ArgumentParser, prefix: str, epochs: float | None, lr: float) -> None:
    group = parser.add_argument_group("training" if not prefix else "fine-tuning")
    flag = f"--{prefix}" if prefix else "--"
    group.add_argument(f"{flag}epochs", type=float, default=epochs,
                       help=f"epochs (fractions allowed){'' if epochs else '; 0/absent: no fine-tuning'}")
    group.add_argument(f"{flag}lr", type=float, default=lr, help=f"learning rate ({lr:g})")
    group.add_argument(f"{flag}optimizer", choices=("sgd", "adam", "adamw"), default="sgd", help="optimizer (sgd)")
    group.add_argument(f"{flag}schedule", choices=("constant", "cosine", "linear", "step", "multistep"),
                       default="cosine" if not prefix else "constant", help="learning-rate schedule")
    group.add_argument(f"{flag}weight-decay", type=float, default=5e-4, help="weight decay (5e-4)")
    group.add_argument(f"{flag}momentum", type=float, default=0.9, help="SGD momentum (0.9)")


def _add_method_options(parser: argparse.ArgumentParser, methods: Sequence[str]) -> list[str]:
    """One flag per option of the pruning ``methods`` (from the registry); returns their names.

    Options whose flag the command already has (``--tile``) are left to it.
    """
    from .prune import METHODS
    from .prune.methods.base import option_fields
    group = parser.add_argument_group("method options (each applies to the methods it names)")
    users: dict[str, list[str]] = {}
    for method in methods:
        for item in option_fields(METHODS[method].options):
            users.setdefault(item.name, []).append(method)
    existing = {option for action in parser._actions for option in action.option_strings}
    added = []
    for name, owners in users.items():
        flag = "--" + name.replace("_", "-")
        if flag in existing:
            continue
        options = METHODS[owners[0]].options
        hint = typing.get_type_hints(options)[name]
        kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        help_text = next(f.metadata["help"] for f in option_fields(options) if f.name == name)
        kwargs: dict[str, Any] = {"help": f"{', '.join(owners)}: {help_text}", "default": None}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is Literal:
            kwargs["choices"] = typing.get_args(kind)
        else:
            kwargs["type"] = kind
        group.add_argument(flag, dest=name, **kwargs)
        added.append(name)
    return added


def _add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a model checkpoint written by sparsewino (run dir model.pt, "
                                           "train/prune/convert --output)")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of threads")
    return value


def _shape_arg(text: str) -> tuple[int, ...]:
    """argparse type: an input shape such as ``1x3x32x32`` (positive integers joined by ``x``)."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1x3x32x32 (N x C x H x W)")
    return shape


def _add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a model checkpoint written by sparsewino, or an engine "
                                           "artifact (.swe) written by `sparsewino export`")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    def global_options(prefix: str) -> argparse.ArgumentParser:
        # the same options before or after the command; main() merges "top_*" into them
        options = argparse.ArgumentParser(add_help=False)
        options.add_argument("--debug", action="store_true", dest=prefix + "debug",
                             help="show the full traceback on errors")
        options.add_argument("--quiet", action="store_true", dest=prefix + "quiet",
                             help="no progress bars or progress lines")
        options.add_argument("--device", dest=prefix + "device", metavar="DEVICE",
                             help="auto (CUDA if available; default), cpu, cuda, cuda:1...")
        options.add_argument("--threads", type=_positive_int, dest=prefix + "threads", metavar="N",
                             help="torch CPU threads (default: torch's choice)")
        return options

    common = global_options("")
    parser = argparse.ArgumentParser(
        prog="sparsewino", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        parents=[global_options("top_")],
        description="Sparse Winograd convolution for PyTorch: train, prune in the spatial and "
                    "Winograd domains, convert, compile to the sparse CPU engine, benchmark and report.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    class _Commands:
        def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, parents=[common], **kwargs)

    commands = _Commands()

    run = commands.add_parser("run", help="run a YAML recipe end to end (resumable)",
                              description="Run a recipe's stages in a run directory. Finished steps are "
                                          "saved; rerunning the same recipe skips them and resumes an "
                                          "interrupted stage.")
    run.add_argument("recipe", nargs="?", help="a YAML file or a bundled recipe name (see --list)")
    run.add_argument("--run-dir", help="output directory (default: runs/<recipe name>)")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a recipe value, e.g. --set stages.baseline.epochs=1 (repeatable)")
    run.add_argument("--data-dir", help="shortcut for --set data.root=DIR")
    run.add_argument("--fresh", action="store_true", help="start over: delete the files of the previous run (only in a "
                          "directory sparsewino run created; other files are kept)")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage (name or 0-based index)")
    run.add_argument("--check", action="store_true", help="validate the recipe and print its stages; run nothing")
    run.add_argument("--smoke", action="store_true",
                     help="run every stage for a few steps on fake data of the same shape (checks a long "
                          "recipe in seconds; run directory runs/<name>-smoke)")
    run.add_argument("--list", action="store_true", help="list the bundled recipes")

    study = commands.add_parser("study", help="run a study: recipes x seeds x overrides, one combined report",
                                description="Run every cell of a study file (YAML) at every seed as an "
                                            "ordinary resumable run (finished runs are skipped, interrupted "
                                            "ones continue), then write the combined report.")
    study.add_argument("study", nargs="?", help="a study YAML file or a bundled study name (see --list)")
    study.add_argument("--run-dir", help="study directory (default: runs/studies/<study name>)")
    study.add_argument("--jobs", type=_count(1), default=1,
                       help="runs at a time (1: in this process; more: subprocesses with CPUs/jobs threads each)")
    study.add_argument("--cell", action="append", default=[], metavar="NAME",
                       help="only this cell (a name or the prefix of a grid's cells; repeatable)")
    study.add_argument("--seed", action="append", type=int, default=[], metavar="N",
                       help="only this seed (repeatable)")
    study.add_argument("--check", action="store_true", help="validate the study and list its runs; run nothing")
    study.add_argument("--report", action="store_true", help="only rewrite the combined report")
    study.add_argument("--list", action="store_true", help="list the bundled studies")
    study.add_argument("--smoke", action="store_true",
                       help="every run on a few fake images for a few steps (the study end to end "
                            "in minutes; study directory runs/studies/<name>-smoke)")

    train = commands.add_parser("train", help="train a registry model and save a checkpoint",
                                description="Train a model from the registry; resumes from OUTPUT.train.pt "
                                            "when a previous run was interrupted.")
    from .models import available_models
    train.add_argument("--model", required=True, help=f"registry name ({', '.join(available_models())})")
    train.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="model option as YAML, e.g. --model-arg 'widths=[8,M,16]' (repeatable)")
    _add_data_args(train, required=True)
    _add_train_args(train, "", 1.0, 0.05)
    train.add_argument("--seed", type=int, default=0, help="seed (0)")
    train.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    train.add_argument("--output", required=True, help="model checkpoint to write")
    train.add_argument("--fresh", action="store_true",
                       help="train anew: delete OUTPUT.train.pt (kept otherwise: an interrupted run with the "
                            "same settings resumes; other settings are refused)")

    from .prune import METHODS
    one_shot = [name for name in METHODS.names() if not METHODS[name].trains]
    prune = commands.add_parser(
        "prune", help="prune a checkpoint (optionally fine-tune) and save it",
        description="Prune a checkpoint with one method and save it. Methods: "
                    + "; ".join(f"{name}: {METHODS[name].description}" for name in one_shot)
                    + ". Methods that prune while training ("
                    + (", ".join(n for n in METHODS.names() if METHODS[n].trains) or "none")
                    + ") run in recipes.")
    _add_checkpoint_arg(prune)
    prune.add_argument("--method", required=True, choices=one_shot)
    prune.add_argument("--amount", type=float, required=True,
                       help="target sparsity in [0, 1) in the method's units: "
                            + "; ".join(f"{name}: {METHODS[name].unit}" for name in one_shot)
                            + "".join(f" (kept fraction = 1 - amount for {name})" for name in one_shot
                                      if METHODS[name].densities))
    prune.add_argument("--scope", choices=("layer", "global"), default="layer")
    prune.add_argument("--include", action="append", help="only these layers (glob, repeatable)")
    prune.add_argument("--exclude", action="append", help="never these layers (glob, repeatable)")
    prune.add_argument("--override", action="append", default=[], metavar="LAYER=AMOUNT",
                       help="per-layer amount, e.g. --override features.0=0.2 (repeatable)")
    prune.add_argument("--tile", type=int, default=4,
                       help="tile m of F(m, r) assumed by spatial_winograd and the statistics (4)")
    prune.set_defaults(method_options=_add_method_options(prune, one_shot))
    _add_data_args(prune, required=False)
    _add_train_args(prune, "finetune-", None, 0.01)
    prune.add_argument("--output", required=True, help="pruned checkpoint to write")

    convert = commands.add_parser("convert", help="convert convolutions to Winograd layers and save")
    _add_checkpoint_arg(convert)
    convert.add_argument("--tile", type=int, default=4, help="output tile m (4: F(4x4, 3x3))")
    from .nn import DOMAINS
    convert.add_argument("--domain", choices=DOMAINS, default="winograd",
                         help="parameter domain of the new layers (winograd)")
    convert.add_argument("--winograd-relu", action="store_true",
                         help="Winograd-ReLU rewrite (ReLU after the input transform; Liu et al.)")
    convert.add_argument("--low-rank", type=_rank_arg, metavar="R",
                         help="low-rank Winograd layers W = U·V of rank R: an int, or a fraction "
                              "of the positions such as 0.25 (Qin et al.; Winograd domain)")
    from .nn import DECOMPOSE_MODES
    convert.add_argument("--decompose", choices=DECOMPOSE_MODES, default="auto",
                         help="kernels above 3 taps and strides above 1: DWM pieces chosen by "
                              "accuracy and multiplications (auto), always pieces of <= 3 taps "
                              "(dwm), or plain F(m, r) with strided convolutions left alone (none)")
    convert.add_argument("--include", action="append", help="only these layers (glob, repeatable)")
    convert.add_argument("--exclude", action="append", help="never these layers (glob, repeatable)")
    convert.add_argument("--output", required=True, help="checkpoint to write")

    evaluate = commands.add_parser("eval", help="test accuracy, sparsity and multiplications of a checkpoint "
                                                "(accuracy only for an engine artifact)")
    _add_model_arg(evaluate)
    _add_data_args(evaluate, required=True, training=False)
    evaluate.add_argument("--tile", type=int, default=4, help="tile assumed for plain convolutions (4)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    bench = commands.add_parser("bench", help="median forward time: dense PyTorch vs model vs compiled engine "
                                              "(an engine artifact: its own time)")
    _add_model_arg(bench)
    bench.add_argument("--batch-size", type=_count(1), default=64, help="images per forward pass (64)")
    bench.add_argument("--input-size", type=_count(1), help="image side (default: the model's)")
    bench.add_argument("--warmup", type=_count(0), default=3)
    bench.add_argument("--repeats", type=_count(1), default=10)
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="compile the engine with this precision (checkpoints; an artifact "
                            "keeps the one it was exported with)")

    export = commands.add_parser(
        "export", help="compile a checkpoint and save it as an engine artifact (.swe) to serve without it",
        description="Compile a checkpoint (tiles and formats tuned on the first --tune-shape) and write "
                    "the engine artifact: the kernel programs for each --tune-shape with their packed "
                    "weights, data only. engine.load(PATH), `sparsewino bench/eval PATH` and the C API "
                    "(sparsewino.h) run it without the model's class or the checkpoint.")
    _add_checkpoint_arg(export)
    export.add_argument("-o", "--output", required=True, help="artifact to write (model.swe)")
    export.add_argument("--tune-shape", action="append", type=_shape_arg, default=[], metavar="NxCxHxW",
                        help="an input shape to plan and save, e.g. 1x1x28x28 (repeatable; default: the "
                             "checkpoint's input shape). Other batch sizes of the same image run in "
                             "pieces of the saved ones")
    export.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the engine's precision (engine.compile's precision): fp32, or bf16 "
                             "weights and products where their error stays about OpenVINO's bf16 "
                             "(docs/performance.md)")
    export.add_argument("--weights", choices=("fp32", "fp16"), default="fp32",
                        help="storage of the packed weights (fp32)")
    export.add_argument("--no-tune", action="store_true",
                        help="keep the converted tiles and the automatic formats (no measuring)")

    count = commands.add_parser("count", help="multiplications per convolution: direct, dense and sparse Winograd",
                                description="Exact multiplication counts (sparsewino.engine.count). With "
                                            "--dataset, also the 'dynamic' count on real test images: only "
                                            "products whose weight and (ReLU-ed) transformed input are both "
                                            "non-zero (Winograd-ReLU, Liu et al.).")
    _add_checkpoint_arg(count)
    count.add_argument("--input-size", type=_count(1), help="image side (default: the checkpoint's input shape)")
    count.add_argument("--dataset", help="measure dynamic counts on this dataset's test images")
    count.add_argument("--data-dir", help="directory of the dataset files")
    count.add_argument("--images", type=_count(1), default=32, help="test images for the dynamic count (32)")
    count.add_argument("--json", action="store_true", help="print JSON")

    report = commands.add_parser("report", help="(re)write the report of a run directory")
    report.add_argument("run_dir", help="a run directory of `sparsewino run`")
    report.add_argument("--no-plots", action="store_true", help="tables only")

    inspect = commands.add_parser("inspect", help="layers, domains, sparsity per layer and per Winograd position")
    _add_checkpoint_arg(inspect)
    inspect.add_argument("--positions", action="store_true", help="print each layer's per-position sparsity map")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    return parser


# --------------------------------------------------------------------------- helpers
def _parse_pairs(items: Sequence[str], what: str) -> dict[str, Any]:
    import yaml
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def _train_config(args: argparse.Namespace, prefix: str, epochs: float) -> Any:
    from .train import OptimizerConfig, ScheduleConfig, TrainConfig
    get = lambda name: getattr(args, prefix + name)  # noqa: E731
    try:
        return TrainConfig(epochs=epochs, batch_size=args.batch_size,
                           optimizer=OptimizerConfig(get("optimizer"), lr=get("lr"), momentum=get("momentum"),
                                                     weight_decay=get("weight_decay")),
                           schedule=ScheduleConfig(get("schedule")), seed=getattr(args, "seed", 0),
                           checkpoint_every=getattr(args, "checkpoint_every", None))
    except OutOfRangeError as exc:      # "lr must be a finite number, got nan" -> "--lr must be ..."
        raise CliError(f"--{(prefix + exc.key).replace('_', '-')} {exc.requirement}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _check_prune_options(args: argparse.Namespace, overrides: dict[str, Any], options: dict[str, Any]) -> Any:
    """The checks of a recipe's prune stage (amount, overrides, method options) for `prune`.

    Returns:
        The validated :class:`~sparsewino.recipes.PruneStage` (overrides as floats).
    """
    import re

    from .recipes.schema import PruneStage
    from .schema import ConfigError, from_dict
    try:
        return from_dict(PruneStage, {"name": "prune", "method": args.method, "amount": args.amount,
                                      "overrides": overrides, **options}, "prune")
    except ConfigError as exc:
        message = re.sub(r"^prune\.overrides\.(\S+):", r"--override \1:", str(exc))
        message = re.sub(r"^prune\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), message)
        raise CliError(message.removeprefix("prune: ")) from None


def _data(args: argparse.Namespace, ctx: Any, train: bool = True) -> Any:
    from .recipes.data_setup import prepare_data
    from .recipes.schema import DataConfig
    config = DataConfig(args.dataset, args.data_dir, args.batch_size, args.eval_batch_size,
                        augment=not args.no_augment, train_limit=args.train_limit, test_limit=args.test_limit)
    return prepare_data(config, ctx, getattr(args, "seed", 0), train)


def _input_shape(checkpoint: dict[str, Any], size: int | None = None) -> tuple[int, int, int, int]:
    """(1, C, H, W): ``size`` if given, else the shape saved in the checkpoint, else the model's."""
    from .models import model_entry
    architecture = checkpoint["architecture"]
    saved = checkpoint.get("input_shape")
    if size is None and saved:
        return tuple(int(v) for v in saved)
    side = size or model_entry(architecture["model"]).input_size
    return (1, architecture["in_channels"], side, side)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, default=str))


# --------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from .recipes import bundled_recipes, load_recipe, read_recipe_data, run_recipe
    from .recipes.runner import last_stage
    if args.list:
        for name, path in sorted(bundled_recipes().items()):
            print(f"{name:44s} {' '.join(str(read_recipe_data(path).get('description', '')).split())}")
        return 0
    if not args.recipe:
        raise CliError("run needs a RECIPE (a YAML file or a bundled name; see sparsewino run --list)")
    overrides = list(args.set) + ([f"data.root={args.data_dir}"] if args.data_dir else [])
    if args.device != "auto":
        overrides.append(f"device={args.device}")
    recipe = load_recipe(args.recipe, overrides, smoke=args.smoke)
    if args.check:
        last_stage(recipe, args.until)                    # --until names a stage of the recipe
        print(f"recipe {recipe.name}: valid; {len(recipe.stages)} stages, data {recipe.data.dataset}, "
              f"model {recipe.model.name}")
        for index, stage in enumerate(recipe.stages):
            print(f"  {index}: {stage.kind} {stage.name}")
        return 0
    main_rank = int(os.environ.get("RANK", "0")) == 0          # torchrun: only rank 0 talks
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    if not args.quiet and main_rank and recipe.description:
        print(f"{recipe.name}: {recipe.description}", flush=True)
    result = run_recipe(recipe, args.run_dir, fresh=args.fresh, until=args.until,
                        progress=not args.quiet, log=log)
    if main_rank:
        _print_headline(result)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .recipes.study import bundled_studies, load_study, run_study
    if args.list:
        import yaml
        for name, path in sorted(bundled_studies().items()):
            text = path.read_text(encoding="utf-8")
            print(f"{name:36s} {' '.join(str(yaml.safe_load(text).get('description', '')).split())}")
        return 0
    if not args.study:
        raise CliError("study needs a STUDY (a YAML file or a bundled name; see sparsewino study --list)")
    study = load_study(args.study, args.run_dir, smoke=args.smoke)
    runs = study.select(args.cell, args.seed)
    if args.check or args.report:
        if args.report:
            from .report.study import write_study_report
            print(f"report: {write_study_report(study, study.run_dir / 'report')}")
            return 0
        print(f"study {study.name}: valid; {len(runs)} runs in {study.run_dir}")
        for run in runs:
            params = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in run.params.items())
            print(f"  {run.key:44s} {run.status():12s} {run.method}" + (f" ({params})" if params else ""))
        return 0
    main_rank = int(os.environ.get("RANK", "0")) == 0
    log = (lambda message: None) if args.quiet or not main_rank else (lambda message: print(message, flush=True))
    result = run_study(study, jobs=args.jobs, cells=args.cell, seeds=args.seed, log=log)
    if result.failed:
        for key, reason in result.failed.items():
            print(f"sparsewino: {key} failed: {reason}", file=sys.stderr)
        return 1
    return 0


def _print_headline(result: Any) -> None:
    """The run's headline numbers and where its report is."""
    from .report import headline
    from .timing import busy_warning, describe_speedup
    numbers = headline(result.rows)

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    print()
    print(f"baseline accuracy        {_pct(numbers['baseline_accuracy'])}")
    compiled = numbers["final_compiled_accuracy"]
    print(f"final accuracy           {_pct(numbers['final_accuracy'])}"
          + (f" (compiled engine {_pct(compiled)})" if compiled is not None else ""))
    print(f"Winograd-domain sparsity {_pct(numbers['winograd_sparsity'])}")
    print(f"multiplication reduction {times(numbers['reduction_vs_direct'])} vs direct convolution, "
          f"{times(numbers['reduction_vs_winograd'])} vs dense Winograd")
    if numbers["speedup_vs_dense"] is not None:
        print(f"compiled speed-up        {describe_speedup(numbers)} vs dense PyTorch conv "
              f"(batch {numbers['benchmark_batch']}, {numbers['benchmark_threads']} threads)")
        if busy_warning(numbers):
            print(f"                         {busy_warning(numbers)}")
    reused = sum(row.get("seconds") or 0 for row in result.rows if row.get("stage") not in result.stages_run)
    if reused and not [name for name in result.stages_run if name != "report"]:
        print(f"wall time                {result.seconds:.0f} s now: every step was reused from the run "
              f"directory (they took {reused:.0f} s when they ran)")
    elif reused:
        print(f"wall time                {result.seconds:.0f} s, plus {reused:.0f} s of steps reused from "
              "an earlier run")
    else:
        print(f"wall time                {result.seconds:.0f} s")
    if result.report is not None:
        print(f"report: {result.report}")
    else:
        print(f"results: {result.run_dir} (no report stage ran)")


def cmd_train(args: argparse.Namespace) -> int:
    from .recipes.architecture import build_model, new_architecture, save_model
    from .train import MetricsLog, fit, init_distributed
    config = _train_config(args, "", args.epochs)
    ctx = init_distributed(args.device)
    data = _data(args, ctx)
    architecture = new_architecture(args.model, _parse_pairs(args.model_arg, "--model-arg"),
                                    data.in_channels, data.num_classes)
    import torch
    torch.manual_seed(args.seed)
    model = build_model(architecture).to(ctx.device)
    output = Path(args.output)
    checkpoint = output.with_name(output.name + ".train.pt")
    if args.fresh:
        checkpoint.unlink(missing_ok=True)
    # what is trained on what: a checkpoint of another model or data is refused, not resumed
    identity = {"architecture": architecture, "dataset": args.dataset, "augment": not args.no_augment,
                "train_limit": args.train_limit, "test_limit": args.test_limit}
    result = fit(model, data.train_loader(args.batch_size, args.seed), config, eval_loader=data.test_loader(),
                 ctx=ctx, checkpoint=checkpoint, metrics=MetricsLog(output.with_name(output.name + ".metrics.jsonl"),
                                                                     enabled=ctx.is_main),
                 progress=not args.quiet, stage="train", extra_state={"architecture": architecture},
                 identity=identity)
    if ctx.is_main:
        save_model(output, model, architecture, evaluation=result.evaluation,
                   input_shape=list(data.input_shape()))
        if result.resumed_at_step == result.steps:
            print(f"already trained with these settings ({checkpoint}; --fresh trains again)")
        print(f"test accuracy {_pct(result.evaluation['accuracy'])} after {result.epochs:g} epochs "
              f"({result.seconds:.0f} s); saved {output}")
    return 0


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen method's keyword arguments from its flags (flags of other methods are errors)."""
    from .prune import METHODS, PruneContext, method_options
    from .recipes.schema import method_option_names
    spec = METHODS.lookup(args.method)
    given = {name: getattr(args, name) for name in args.method_options if getattr(args, name) is not None}
    own = method_option_names(spec)
    stray = ["--" + name.replace("_", "-") for name in given if name not in own]
    if stray:
        raise CliError(f"{', '.join(stray)} do(es) not apply to method {spec.name} (its options: "
                       f"{', '.join('--' + n.replace('_', '-') for n in own) or 'none'})")
    try:
        return method_options(spec, spec.options(**given), PruneContext(tile=args.tile))
    except ValueError as exc:
        raise CliError(f"--method {spec.name}: {exc}") from None


def cmd_prune(args: argparse.Namespace) -> int:
    from .prune import prune_model
    from .recipes.architecture import load_model, save_model
    from .recipes.measure import sparsity_summary
    from .train import fit, init_distributed
    ctx = init_distributed(args.device)
    model, checkpoint = load_model(args.checkpoint, ctx.device)
    architecture = checkpoint["architecture"]
    options = _method_options(args)
    if not 0 <= args.amount < 1:
        raise CliError(f"--amount {args.amount} is impossible: give a fraction in [0, 1)")
    overrides = _check_prune_options(args, _parse_pairs(args.override, "--override"), {}).overrides
    prune_model(model, args.method, args.amount, scope=args.scope, include=args.include,
                exclude=args.exclude, overrides=overrides or None, **options)
    evaluation = None
    if args.finetune_epochs:
        if not args.dataset:
            raise CliError("fine-tuning needs --dataset")
        data = _data(args, ctx)
        config = _train_config(args, "finetune_", args.finetune_epochs)
        result = fit(model, data.train_loader(args.batch_size, 0), config, eval_loader=data.test_loader(),
                     ctx=ctx, progress=not args.quiet, stage="finetune")
        evaluation = result.evaluation
    shape = _input_shape(checkpoint)
    summary = sparsity_summary(model, shape, args.tile)
    if ctx.is_main:
        save_model(args.output, model, architecture, evaluation=evaluation, input_shape=list(shape))
        text = f"{args.method} {args.amount:g}: Winograd-domain sparsity {_pct(summary['winograd_sparsity'])}, " \
               f"spatial {_pct(summary['spatial_sparsity'])}"
        if "linear_sparsity" in summary:
            text += f", linear layers {_pct(summary['linear_sparsity'])}"
        if evaluation:
            text += f", test accuracy {_pct(evaluation['accuracy'])}"
        print(f"{text}; saved {args.output}")
    return 0


def _rank_arg(text: str) -> int | float:
    """``--low-rank``: an int rank or a fraction (validated by the layers)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int rank or a fraction, got {text!r}") from None


def cmd_convert(args: argparse.Namespace) -> int:
    from .recipes.architecture import apply_transform, load_model, save_model
    model, checkpoint = load_model(args.checkpoint)
    architecture = checkpoint["architecture"]
    selection = dict(include=args.include, exclude=args.exclude, decompose=args.decompose)
    if args.low_rank is not None:
        if args.winograd_relu or args.domain != "winograd":
            raise CliError("--low-rank makes Winograd-domain layers without Winograd-ReLU; drop "
                           "--winograd-relu and --domain spatial")
        selection["low_rank"] = args.low_rank
    if args.winograd_relu:
        report = apply_transform(model, architecture, "winograd_relu", tile=args.tile, **selection)
    else:
        report = apply_transform(model, architecture, "convert", tile=args.tile, domain=args.domain, **selection)
    save_model(args.output, model, architecture, input_shape=list(_input_shape(checkpoint)))
    print(report)
    print(f"saved {args.output}")
    return 0


def _load_artifact(path: str) -> Any:
    """The engine artifact at ``path`` (:func:`sparsewino.engine.load`), or ``None`` when the
    file is not one (a checkpoint)."""
    from .engine.artifact import is_artifact, load
    return load(path) if is_artifact(path) else None


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from . import engine
    from .recipes.architecture import load_model
    compile_options: dict[str, Any] = {"threads": args.threads, "weights": args.weights,
                                       "precision": args.precision}
    model, checkpoint = load_model(args.checkpoint)
    shapes = args.tune_shape or [_input_shape(checkpoint)]
    channels = checkpoint["architecture"]["in_channels"]
    for shape in shapes:
        if len(shape) != 4 or shape[1] != channels:
            raise CliError(f"--tune-shape {'x'.join(map(str, shape))}: the model takes N x {channels} x H x W")
    if not args.no_tune:
        compile_options["tune"] = torch.zeros(shapes[0])
    try:
        compiled = engine.compile(model.eval(), **compile_options)
    except ValueError as exc:
        raise CliError(f"--precision {args.precision} --weights {args.weights}: {exc}") from None
    path = engine.save(compiled, args.output, shapes=shapes)
    size = path.stat().st_size
    print(compiled.compile_report)
    print(f"saved {path} ({size / 1e6:.2f} MB; input shapes "
          f"{', '.join('x'.join(map(str, s)) for s in shapes)}; backend {engine.backend()})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .recipes.architecture import load_model
    from .recipes.measure import sparsity_summary
    from .train import evaluate, init_distributed
    artifact = _load_artifact(args.checkpoint)
    if artifact is not None:
        return _eval_artifact(args, artifact)
    ctx = init_distributed(args.device)
    model, checkpoint = load_model(args.checkpoint, ctx.device)
    data = _data(args, ctx, train=False)
    result = evaluate(model, data.test_loader(), ctx, progress=not args.quiet)
    summary = sparsity_summary(model, data.input_shape(), args.tile)
    if not ctx.is_main:
        return 0
    if args.json:
        _print_json({**result, **summary})
        return 0
    print(f"test accuracy {_pct(result['accuracy'])} (loss {result['loss']:.4f}, {result['samples']} images)")
    print(f"spatial sparsity {_pct(summary['spatial_sparsity'])}, Winograd-domain sparsity "
          f"{_pct(summary['winograd_sparsity'])}"
          + (f", linear layers {_pct(summary['linear_sparsity'])}" if "linear_sparsity" in summary else ""))
    if summary.get("reduction_vs_direct"):
        print(f"multiplications per image: direct {summary['direct_mults']:,.0f}, Winograd with zero "
              f"weights skipped {summary['sparse_mults']:,.0f} ({summary['reduction_vs_direct']:.2f}x fewer; "
              f"plain stride-1 convolutions counted as if converted with tile {args.tile})")
    return 0


def _eval_artifact(args: argparse.Namespace, artifact: Any) -> int:
    """``eval`` of an engine artifact: test accuracy (no model, so no sparsity or counts)."""
    from .train import DistContext, evaluate
    if args.device not in ("auto", "cpu"):
        raise CliError(f"an engine artifact runs on the CPU; --device {args.device} is not supported")
    data = _data(args, DistContext(), train=False)
    image = tuple(data.input_shape()[1:])
    if all(shape[1:] != image for shape in artifact.input_shapes):
        raise CliError(f"{args.checkpoint} takes inputs {artifact.input_shapes}, the dataset gives "
                       f"images {image}: export it with --tune-shape 1x{'x'.join(map(str, image))}")
    result = evaluate(artifact, data.test_loader(), DistContext(), progress=not args.quiet)
    if args.json:
        _print_json({**result, "artifact": True, "backend": artifact.backend})
        return 0
    print(f"test accuracy {_pct(result['accuracy'])} (loss {result['loss']:.4f}, {result['samples']} images; "
          f"engine artifact on backend {artifact.backend})")
    return 0


def _bench_artifact(args: argparse.Namespace, artifact: Any) -> int:
    """``bench`` of an engine artifact: its median time (there is no model to compare with)."""
    import torch

    from .timing import cpu_flags, cpu_model, interleaved_times, quartiles
    image = artifact.input_shapes[0][1:]
    if args.input_size is not None:
        image = (image[0], args.input_size, args.input_size)
    images = torch.randn(args.batch_size, *image, generator=torch.Generator().manual_seed(0))
    times = interleaved_times({"artifact": lambda: artifact(images)}, args.warmup, args.repeats)
    low, median, high = quartiles(times["artifact"])
    result = {"artifact_ms": 1e3 * median, "artifact_low_ms": 1e3 * low, "artifact_high_ms": 1e3 * high,
              "batch_size": args.batch_size, "threads": artifact.header.get("threads"),
              "backend": artifact.backend, "cpu": cpu_model(), "cpu_flags": cpu_flags(),
              "input_shape": list(images.shape), "saved_shapes": [list(s) for s in artifact.input_shapes]}
    if args.json:
        _print_json(result)
        return 0
    print(f"batch {args.batch_size} x {tuple(image)}, {result['threads']} thread(s) as exported, "
          f"{result['cpu']} ({result['cpu_flags'] or 'flags unknown'}), backend {artifact.backend}, "
          f"median of {args.repeats} runs after {args.warmup} warm-up")
    print(f"  engine artifact   {result['artifact_ms']:9.2f} ms   (quartiles {1e3 * low:.2f} - {1e3 * high:.2f})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from . import engine
    from .recipes.architecture import load_model
    from .recipes.measure import benchmark
    from .timing import busy_warning, cpu_model, describe_speedup
    if args.device not in ("auto", "cpu"):
        raise CliError(f"bench times the CPU engine (sparsewino.engine) against PyTorch on the CPU; "
                       f"--device {args.device} is not supported: use --device cpu")
    artifact = _load_artifact(args.checkpoint)
    if artifact is not None:
        return _bench_artifact(args, artifact)
    model, checkpoint = load_model(args.checkpoint)
    shape = _input_shape(checkpoint, args.input_size)
    images = torch.randn(args.batch_size, *shape[1:], generator=torch.Generator().manual_seed(0))
    times = benchmark(checkpoint["architecture"], model, engine.compile(model, precision=args.precision),
                      images, args.warmup,
                      args.repeats)
    result = {**times, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
              "cpu": cpu_model(), "input_shape": list(images.shape)}
    if args.json:
        _print_json(result)
        return 0
    print(f"batch {args.batch_size} x {tuple(shape[1:])}, {result['threads']} thread(s), {result['cpu']} "
          f"({result['cpu_flags'] or 'flags unknown'}), median of {args.repeats} interleaved runs after "
          f"{args.warmup} warm-up")
    print(f"  dense PyTorch (nn.Conv2d)   {times['dense_ms']:9.2f} ms   1.00x")
    print(f"  this model (PyTorch layers) {times['model_ms']:9.2f} ms   {times['dense_ms'] / times['model_ms']:.2f}x")
    print(f"  compiled sparse engine      {times['compiled_ms']:9.2f} ms   {describe_speedup(result)}")
    if busy_warning(result):
        print(busy_warning(result))
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    from .engine import count
    from .recipes.architecture import load_model
    model, checkpoint = load_model(args.checkpoint)
    shape = _input_shape(checkpoint, args.input_size)
    inputs = None
    if args.dataset:
        from .recipes.data_setup import DataConfig, prepare_data
        from .train import DistContext
        data = prepare_data(DataConfig(args.dataset, args.data_dir), DistContext(), train=False)
        inputs = data.test_images(args.images)
        shape = tuple(inputs.shape)
    counts = count(model, shape, inputs=inputs)
    if args.json:
        _print_json(counts.to_dict())
        return 0
    print(counts)
    print(f"(input {tuple(shape)}; plain convolutions run directly"
          + ("; 'dynamic' measured on test images" if inputs is not None else "") + ")")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .recipes import load_model, load_recipe
    from .report import write_report
    run_dir = Path(args.run_dir)
    if not (run_dir / "results.json").is_file():
        # a missing or wrong input path is a failure to run (1), like `inspect missing.pt`
        raise FileNotFoundError(f"{run_dir} is not a run directory (no results.json); run a recipe first")
    from .recipes.rundir import check_takeover
    check_takeover(run_dir, "report")
    rows = json.loads((run_dir / "results.json").read_text())
    recipe = load_recipe(run_dir / "recipe.yaml") if (run_dir / "recipe.yaml").is_file() else None
    model = shape = None
    if (run_dir / "model.pt").is_file():
        model, checkpoint = load_model(run_dir / "model.pt")
        shape = _input_shape(checkpoint)
    path = write_report(run_dir / "report", rows, model=model, input_shape=shape,
                        tile=recipe.tile if recipe else 4, recipe=recipe, plots=not args.no_plots)
    print(f"report: {path}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .prune import stats
    from .recipes.architecture import load_model
    model, checkpoint = load_model(args.checkpoint)
    architecture = checkpoint["architecture"]
    report = stats(model, input_shape=_input_shape(checkpoint))
    if args.json:
        _print_json({"architecture": architecture, **report.to_dict(),
                     "progress": checkpoint.get("progress"), "evaluation": checkpoint.get("evaluation")})
        return 0
    transforms = [t["op"] + "(" + ", ".join(f"{k}={v}" for k, v in t.items() if k != "op" and v is not None) + ")"
                  for t in architecture["transforms"]]
    print(f"{args.checkpoint}: model {architecture['model']} ({architecture['in_channels']} -> "
          f"{architecture['num_classes']} classes), transforms: {', '.join(transforms) or 'none'}")
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{parameters:,} parameters; checkpoint kind {checkpoint.get('kind')}"
          + (f", stage {checkpoint['stage']}" if "stage" in checkpoint else ""))
    print(report)
    if args.positions:
        for layer in report.layers:
            if layer.position_sparsity is not None:
                print(f"\n{layer.name}: zeros per Winograd position")
                grid = layer.position_sparsity
                for row in (grid if grid.dim() == 2 else grid.flatten(0, -2)):
                    print("  " + " ".join(f"{v:4.2f}" for v in row.tolist()))
    return 0


#: Commands that train for long: they keep freed memory (:func:`~sparsewino.allocator.retain_freed_memory`).
TRAINING_COMMANDS = ("run", "study", "train", "prune")

COMMANDS = {"run": cmd_run, "study": cmd_study, "train": cmd_train, "prune": cmd_prune, "convert": cmd_convert,
            "eval": cmd_eval, "bench": cmd_bench, "export": cmd_export, "count": cmd_count, "report": cmd_report,
            "inspect": cmd_inspect}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparsewino`` command; returns the exit status.

    Errors print one line ``sparsewino: error: ...`` (exit 1; 2 for usage errors), the full
    traceback only with ``--debug``. Errors in the user's input (:class:`~sparsewino.errors.UserError`)
    and in the environment (``OSError``: missing file, full disk) show their message; anything
    else is a defect and shows its type and a hint to re-run with ``--debug``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        from .recipes.study import follow_parent
        follow_parent()                       # a study's run ends with its study
    for name in ("debug", "quiet", "device", "threads"):
        value = getattr(args, name, None)
        setattr(args, name, value if value not in (None, False) else getattr(args, "top_" + name))
    args.device = args.device or "auto"
    if args.version:
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"sparsewino {version('sparsewino')}")
        except PackageNotFoundError:
            print("sparsewino (not installed)")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from .train.progress import log_progress_to_stdout
    log_progress_to_stdout(not args.quiet)          # progress lines when stdout is a log file
    if args.command in TRAINING_COMMANDS:
        retain_freed_memory()                       # fewer page faults per step (allocator.py)
    try:
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        status = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("sparsewino: interrupted (finished steps are saved; rerun to resume)", file=sys.stderr)
        return 130
    except (UserError, OSError) as exc:        # bad input or environment: the message says what to do
        if args.debug:
            raise
        print(f"sparsewino: error: {_first_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, CliError) else 1
    except Exception as exc:  # a defect: one line with its type; --debug shows the traceback
        if args.debug:
            raise
        print(f"sparsewino: error: {type(exc).__name__}: {_first_line(exc)} (an unexpected error, not "
              "a problem with your input as far as sparsewino can tell; re-run with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 1
    finally:
        if "torch.distributed" in sys.modules:     # under torchrun: leave the group before exit
            from .train.distributed import shutdown_distributed
            shutdown_distributed()
    return status


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())

"""Mask-aware training, fine-tuning and evaluation loops (single process or DDP), resumable."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loader import BatchLoader, batch_seed
from ..prune.serialization import check_mask_values
from ..schema import to_dict
from .callbacks import call_callbacks, callback_states, load_callback_states, regularization_of
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig, build_optimizer, lr_factor
from .distributed import DistContext, all_reduce_sum, sync_buffers, unwrap_model, wrap_model
from .metrics import MetricsLog
from .progress import ProgressLines, progress_bar, show_progress, show_progress_lines

__all__ = ["fit", "evaluate", "TrainResult", "show_progress", "load_model_state", "check_masks",
           "progress_bar"]


@dataclass
class TrainResult:
    """Outcome of :func:`fit`: steps run, mean training loss of the last epoch, evaluations."""

    steps: int
    epochs: float
    train_loss: float
    evaluation: dict[str, float] | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_at_step: int | None = None


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader, ctx: DistContext | None = None,
             progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Loss and top-1 accuracy of ``model`` on ``loader`` (summed over ranks when distributed).

    Args:
        model: the model (bare or DDP-wrapped); evaluated in ``eval()`` mode, its previous
            mode restored afterwards.
        loader: an evaluation :class:`~sparsewino.data.BatchLoader` (each image once over ranks).
        ctx: distributed context; ``None`` for a single process on the model's device.

    Returns:
        ``{"loss": mean cross-entropy, "accuracy": fraction correct, "samples": count}``.

    Examples:
        >>> evaluate(model, test_loader)["accuracy"]                    # doctest: +SKIP
        0.912
    """
    model = unwrap_model(model)
    ctx = ctx or DistContext(device=_model_device(model))
    sync_buffers(model, ctx)
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    bar = progress_bar(show_progress(progress, ctx), total=len(loader), desc=desc, leave=False)
    try:
        for images, labels in loader.epoch(0):
            images, labels = images.to(ctx.device), labels.to(ctx.device)
            logits = model(images)
            totals[0] += F.cross_entropy(logits, labels, reduction="sum").item()
            totals[1] += (logits.argmax(1) == labels).sum().item()
            totals[2] += labels.numel()
            bar.update()
    finally:
        bar.close()
        model.train(was_training)
    totals = all_reduce_sum(totals, ctx).cpu()
    count = max(totals[2].item(), 1.0)
    return {"loss": totals[0].item() / count, "accuracy": totals[1].item() / count,
            "samples": int(totals[2].item())}


def _model_device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def check_masks(state: dict[str, torch.Tensor], source: str) -> None:
    """:class:`CheckpointError` when a pruning mask of ``state`` holds values other than 0 and 1."""
    try:
        check_mask_values(state, source)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` with an error that says what does not match."""
    check_masks(state, source)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (
            f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "",
            f"different shapes for {sorted(shapes)[:4]}" if shapes else "") if part)
        raise CheckpointError(f"{source} does not fit this model ({detail}); was it written for a "
                              "different model, pruning or conversion?")
    model.load_state_dict(state)


#: TrainConfig fields that do not change the trained weights (a resume may change them).
_RESULT_NEUTRAL = ("checkpoint_every", "log_every", "eval_every_epoch")


def _result_settings(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in to_dict(config).items() if k not in _RESULT_NEUTRAL}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["config.epochs 1.0 -> 0.5", ...]``: settings that differ (absent on one side: not compared,
    so checkpoints written before settings were recorded still resume)."""
    old, new = _flatten(saved), _flatten(current)
    return [f"{key.split('.', 1)[-1]} {old[key]!r} -> {new[key]!r}" for key in old
            if key in new and old[key] != new[key]]


def _set_lr(optimizer: torch.optim.Optimizer, base: float, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = base * factor
    return base * factor


def _distilled(loss: torch.Tensor, logits: torch.Tensor, teacher: nn.Module, images: torch.Tensor,
               distill: Any) -> torch.Tensor:
    """Mix the hard-label loss with the temperature-softened KL divergence to the teacher."""
    with torch.no_grad():
        target = F.softmax(teacher(images) / distill.temperature, dim=1)
    soft = F.kl_div(F.log_softmax(logits / distill.temperature, dim=1), target, reduction="batchmean")
    return (1 - distill.weight) * loss + distill.weight * distill.temperature ** 2 * soft


def fit(model: nn.Module, train_loader: BatchLoader, config: TrainConfig, *,
        eval_loader: BatchLoader | None = None, callbacks: Iterable[Any] = (),
        ctx: DistContext | None = None, checkpoint: str | Path | None = None, resume: bool = True,
        metrics: MetricsLog | None = None, progress: bool = True, stage: str = "train",
        extra_state: dict[str, Any] | None = None, identity: dict[str, Any] | None = None,
        teacher: nn.Module | None = None) -> TrainResult:
    """Train or fine-tune ``model`` (masks respected), resumable from its checkpoint.

    Pruning masks live in the model (``weight = weight_orig * weight_mask``), so pruned weights
    stay zero; gradient scaling is done by the masks' tensor hooks. Callbacks follow the
    protocol of :mod:`sparsewino.train.callbacks` (``after_step`` gets the 0-based step index).

    Under ``torchrun`` pass the :class:`DistContext` of :func:`init_distributed` and loaders
    built with its rank/world size: the model is wrapped in DistributedDataParallel, rank 0
    writes checkpoints and metrics, and masks are broadcast from rank 0 at the end.

    Reproducibility: data order and augmentation depend only on ``(seed, epoch, batch, rank)``
    and torch's global RNG (dropout) is reseeded from the same tuple before every step, so a
    run resumed from a mid-epoch checkpoint ends exactly like an uninterrupted one.

    Args:
        model: the model to train, on ``ctx.device`` (moved there if not).
        train_loader: shuffling, augmenting :class:`~sparsewino.data.BatchLoader`.
        config: epochs, optimizer, schedule, ... (:class:`TrainConfig`).
        eval_loader: evaluated after every epoch (``config.eval_every_epoch``) and at the end.
        callbacks: pruning callbacks and others.
        ctx: distributed context; default: a single process on the model's device.
        checkpoint: checkpoint file, written atomically every ``checkpoint_every`` steps, at
            each epoch end and at the end (rank 0); ``None`` disables checkpoints.
        resume: continue from ``checkpoint`` when it exists (a finished checkpoint just loads
            its weights and returns its result). A checkpoint of a run with other settings
            (``config`` apart from checkpoint/log frequencies, or ``identity``) is refused:
            resuming it would silently ignore the new ones.
        metrics: JSON-lines log for step/epoch/eval records.
        progress: show a tqdm bar (on rank 0, when stderr is a terminal) and, when stdout is
            not a terminal, a log line every tenth of the run with the time left
            (:mod:`sparsewino.train.progress`).
        stage: name written in metrics and checkpoints.
        extra_state: plain data stored in every checkpoint (e.g. the architecture record).
        identity: plain data describing what is trained on what (model, data); like the
            settings of ``config`` that shape the result, it must match to resume.
        teacher: the model ``config.distill`` learns from (run in eval mode, no gradients).

    Returns:
        :class:`TrainResult`.

    Raises:
        CheckpointError: the checkpoint is corrupt or belongs to another model/configuration
            (the message lists the settings that differ).

    Examples:
        >>> result = fit(model, train_loader, TrainConfig(epochs=2), eval_loader=test_loader)  # doctest: +SKIP
        >>> result.evaluation["accuracy"]                               # doctest: +SKIP
        0.91
    """
    ctx = ctx or DistContext(device=_model_device(model))
    callbacks = list(callbacks)
    metrics = metrics or MetricsLog(None, enabled=ctx.is_main)
    model.to(ctx.device)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch < 1:
        raise ValueError("the training loader yields no batch (dataset smaller than one batch "
                         "with drop_last?)")
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    if config.distill is not None:
        if teacher is None:
            raise ValueError("config.distill needs a teacher model: fit(..., teacher=dense_model)")
        teacher = teacher.to(ctx.device).eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
    optimizer = build_optimizer(model.parameters(), config.optimizer)
    epoch, batch, step = 0, 0, 0
    loss_sum, loss_count = 0.0, 0
    history: list[dict[str, Any]] = []
    resumed_at = None
    saved_callbacks = None
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    settings = {"config": _result_settings(config), "identity": identity}
    if checkpoint is not None and resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, map_location=ctx.device)
        changes = _changes(state.get("settings", {}), settings)
        if changes:
            raise CheckpointError(
                f"checkpoint {checkpoint} belongs to a training run with other settings "
                f"({'; '.join(changes[:6])}); resuming it would ignore them. To train anew, "
                "delete it (sparsewino train: --fresh); to resume it, repeat its settings")
        load_model_state(model, state["model"], f"checkpoint {checkpoint}")
        if state.get("complete"):
            result = state["result"]
            return TrainResult(result["steps"], result["epochs"], result["train_loss"],
                               result["evaluation"], result["seconds"], state.get("history", []),
                               resumed_at_step=result["steps"])
        progress_state = state["progress"]
        if progress_state["total_steps"] != total_steps:
            raise CheckpointError(
                f"checkpoint {checkpoint} belongs to a run of {progress_state['total_steps']} steps, "
                f"this one has {total_steps}; use the same configuration or delete the checkpoint")
        optimizer.load_state_dict(state["optimizer"])
        epoch, batch, step = progress_state["epoch"], progress_state["batch"], progress_state["step"]
        loss_sum, loss_count = progress_state["loss_sum"], progress_state["loss_count"]
        history = list(state.get("history", []))
        saved_callbacks = state.get("callbacks", [])
        resumed_at = step
        metrics.write(stage=stage, event="resume", step=step, epoch=epoch)
    if saved_callbacks is not None:
        load_callback_states(callbacks, saved_callbacks)
    call_callbacks(callbacks, "on_train_begin", model)
    network = wrap_model(model, ctx)
    base_lr = config.optimizer.lr
    started = time.perf_counter()
    last_loss = float("nan")

    def save(complete: bool = False, result: dict[str, Any] | None = None) -> None:
        if checkpoint is None or not ctx.is_main:
            return
        save_checkpoint(checkpoint, {
            "kind": "training", "stage": stage, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "callbacks": callback_states(callbacks),
            "progress": {"epoch": epoch, "batch": batch, "step": step, "total_steps": total_steps,
                         "steps_per_epoch": steps_per_epoch, "loss_sum": loss_sum,
                         "loss_count": loss_count},
            "history": history, "config": to_dict(config), "settings": settings, "complete": complete,
            "result": result, **(extra_state or {})})

    bar = progress_bar(show_progress(progress, ctx), total=total_steps, initial=step, desc=stage,
                       leave=False, dynamic_ncols=True)
    lines = ProgressLines(stage, total_steps, step, steps_per_epoch) \
        if show_progress_lines(progress, ctx) else None
    try:
        while step < total_steps:
            network.train()
            for images, labels in train_loader.epoch(epoch, start=batch):
                torch.manual_seed(batch_seed(config.seed, epoch, batch, ctx.rank, 0x5EED))
                images, labels = images.to(ctx.device), labels.to(ctx.device)
                lr = _set_lr(optimizer, base_lr, lr_factor(config.schedule, step, total_steps, steps_per_epoch))
                optimizer.zero_grad(set_to_none=True)
                logits = network(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
                if config.distill is not None:
                    loss = _distilled(loss, logits, teacher, images, config.distill)
                penalty = regularization_of(callbacks, model)
                (loss if penalty is None else loss + penalty).backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                step += 1
                batch += 1
                call_callbacks(callbacks, "after_step", model, step - 1)   # 0-based index of this step
                last_loss = loss.item()
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"{stage}: loss became {last_loss} at step {step}; lower "
                                             "the learning rate or enable grad_clip")
                loss_sum, loss_count = loss_sum + last_loss, loss_count + 1
                bar.update()
                bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.2g}", refresh=False)
                if lines is not None:
                    lines.update(step, loss=last_loss, lr=lr)
                if step % config.log_every == 0:
                    metrics.write(stage=stage, event="step", step=step, epoch=epoch, loss=last_loss, lr=lr)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                    save()
                if step >= total_steps:
                    break
            call_callbacks(callbacks, "on_epoch_end", model, epoch)
            record = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(loss_count, 1)}
            final = step >= total_steps
            if eval_loader is not None and config.eval_every_epoch and not final:
                record.update({f"test_{k}": v for k, v in evaluate(model, eval_loader, ctx).items()})
            history.append(record)
            metrics.write(stage=stage, event="epoch", **record)
            epoch, batch = epoch + 1, 0
            epoch_loss, loss_sum, loss_count = record["train_loss"], 0.0, 0
            if not final:
                save()
    finally:
        bar.close()
    call_callbacks(callbacks, "on_train_end", model)
    sync_buffers(model, ctx)                 # masks and BatchNorm statistics of rank 0 everywhere
    evaluation = evaluate(model, eval_loader, ctx) if eval_loader is not None else None
    seconds = time.perf_counter() - started
    result = {"steps": step, "epochs": step / steps_per_epoch, "train_loss": epoch_loss,
              "evaluation": evaluation, "seconds": seconds}
    if evaluation is not None:
        history[-1].update({f"test_{k}": v for k, v in evaluation.items()})
        metrics.write(stage=stage, event="eval", step=step, **{f"test_{k}": v for k, v in evaluation.items()})
    save(complete=True, result=result)
    return TrainResult(step, step / steps_per_epoch, epoch_loss, evaluation, seconds, history, resumed_at)

"""Mask-aware training: loops, optimizers/schedules, DDP, atomic checkpoints, metrics."""
from ..schema import ConfigError, from_dict, to_dict
from .adder import L2ToL1Schedule
from .callbacks import call_callbacks, regularization_of
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import DistillConfig, OptimizerConfig, ScheduleConfig, TrainConfig, build_optimizer, lr_factor
from .distributed import (
                          DistContext,
                          all_reduce_sum,
                          barrier,
                          init_distributed,
                          resolve_device,
                          shutdown_distributed,
                          sync_buffers,
                          unwrap_model,
                          wrap_model,
)
from .loop import TrainResult, evaluate, fit, load_model_state
from .metrics import MetricsLog, read_metrics

__all__ = ["fit", "evaluate", "TrainResult", "TrainConfig", "OptimizerConfig", "ScheduleConfig", "DistillConfig",
           "build_optimizer", "lr_factor", "call_callbacks", "regularization_of",
           "CheckpointError", "save_checkpoint", "load_checkpoint", "load_model_state",
           "DistContext", "init_distributed", "shutdown_distributed", "wrap_model", "unwrap_model",
           "all_reduce_sum", "sync_buffers", "barrier", "resolve_device", "MetricsLog",
           "read_metrics", "ConfigError", "from_dict", "to_dict", "L2ToL1Schedule"]

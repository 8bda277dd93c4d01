"""YAML recipes: validated stage lists (train, prune, convert, finetune, evaluate, compile, benchmark,
report) and their runner."""
from .architecture import apply_transform, build_model, load_model, new_architecture, save_model
from .loading import apply_overrides, bundled_recipes, find_recipe, load_recipe, read_recipe_data
from .runner import RunDirectoryError, RunResult, run_recipe
from .schema import (
                     STAGE_KINDS,
                     BenchmarkStage,
                     CompileStage,
                     ConvertStage,
                     DataConfig,
                     EvaluateStage,
                     GradualConfig,
                     ModelConfig,
                     PruneStage,
                     Recipe,
                     ReportStage,
                     TrainStage,
                     parse_recipe,
                     recipe_to_dict,
)

__all__ = ["Recipe", "DataConfig", "ModelConfig", "TrainStage", "PruneStage", "GradualConfig",
           "ConvertStage", "EvaluateStage", "CompileStage", "BenchmarkStage", "ReportStage",
           "STAGE_KINDS", "parse_recipe", "recipe_to_dict", "load_recipe", "find_recipe",
           "bundled_recipes", "read_recipe_data", "apply_overrides", "run_recipe", "RunResult",
           "RunDirectoryError", "build_model", "load_model", "save_model", "new_architecture",
           "apply_transform"]

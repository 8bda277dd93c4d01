"""The schema layer (typed dataclasses from mappings) and the training configuration checks."""
import pytest

from sparsewino.train import ConfigError, OptimizerConfig, TrainConfig, from_dict, to_dict


def test_valid_nested_config():
    config = from_dict(TrainConfig, {"epochs": 2, "optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.8, 0.9]},
                                     "schedule": {"name": "multistep", "milestones": [1, 1.5]}})
    assert config.epochs == 2.0 and isinstance(config.epochs, float)
    assert config.optimizer.betas == (0.8, 0.9) and config.schedule.milestones == [1.0, 1.5]
    assert from_dict(TrainConfig, to_dict(config)) == config


@pytest.mark.parametrize("data,message", [
    ({"epoch": 2}, r"config: unknown key 'epoch'; did you mean 'epochs'\?"),
    ({"optimizer": {"lr": "fast"}}, r"config.optimizer.lr: must be a number, got 'fast'"),
    ({"optimizer": {"name": "lion"}}, r"config.optimizer.name: must be 'sgd' or 'adam' or 'adamw'"),
    ({"batch_size": 12.5}, r"config.batch_size: must be an integer"),
    ({"eval_every_epoch": "yes"}, r"must be true or false"),
    ({"optimizer": {"lr": -1}}, r"config.optimizer: lr must be > 0"),
    ({"epochs": 0}, r"epochs must be > 0"),
    ({"schedule": {"milestones": [3, 1]}}, r"milestones must be increasing"),
    ({"optimizer": {"betas": [0.9]}}, r"must have 2 items"),
    ({"grad_clip": None, "checkpoint_every": 0}, r"checkpoint_every must be >= 1"),
    ({"optimizer": {"name": "adam", "nesterov": True}}, r"nesterov needs optimizer 'sgd'"),
    ({"schedule": [1]}, r"config.schedule: must be a mapping"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data)


def test_missing_required():
    import dataclasses

    @dataclasses.dataclass
    class Needs:
        value: int

    with pytest.raises(ConfigError, match="missing required key 'value'"):
        from_dict(Needs, {}, "stage")
    assert from_dict(OptimizerConfig, None) == OptimizerConfig()

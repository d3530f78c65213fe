"""The vision training section is the trainer's own settings type: shipped configs, the documented
aliases of older names, the cross-field checks of config validation, and build_run leaving its
config as it is."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from coremtl.trainer_config import OptimizationConfig, TrainerConfig
from experiments.vision.config import TrainingConfig, VisionConfig, from_dict, load_config
from experiments.vision.training import build_run, trainer_config
from scm.validation import InvalidParameterError

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"
OPTIMIZATION_FIELDS = [f.name for f in dataclasses.fields(OptimizationConfig)]


def test_the_training_section_is_an_optimization_config():
    assert issubclass(TrainingConfig, OptimizationConfig)
    assert set(OPTIMIZATION_FIELDS) <= {f.name for f in dataclasses.fields(TrainingConfig)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_use_the_trainer_names_and_reach_the_trainer_unchanged(path):
    training = yaml.safe_load(path.read_text())["training"]
    assert not set(training) & set(TrainingConfig.ALIASES), "an older name in a shipped config"
    config = load_config(path)
    settings = trainer_config(config)
    assert isinstance(settings, TrainerConfig)
    for name in OPTIMIZATION_FIELDS:
        assert getattr(settings, name) == getattr(config.training, name), name
    assert settings.seed == config.run.seed and settings.device == config.run.device
    assert settings.learning_rate == training["learning_rate"]


def test_older_names_and_grad_clip_zero_are_accepted_as_aliases(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        "data: {dataset: scenes}\n"
        "training: {lr: 0.01, grad_clip: 0, max_steps_per_epoch: 3, checkpoint_every_steps: 2}\n"
    )
    training = load_config(path).training
    assert training.learning_rate == 0.01 and training.grad_clip is None
    assert training.max_batches_per_epoch == 3 and training.checkpoint_every == 2
    assert trainer_config(load_config(path)).grad_clip is None
    overridden = load_config(CONFIGS / "nyuv2.yaml", ["training.lr=0.5", "training.grad_clip=0"])
    assert overridden.training.learning_rate == 0.5 and overridden.training.grad_clip is None
    assert "lr" not in overridden.to_dict()["training"]
    with pytest.raises(InvalidParameterError, match=r"training\.lr: expected a number"):
        from_dict(VisionConfig, {"training": {"lr": "fast"}})


def test_an_alias_and_its_field_together_are_refused():
    with pytest.raises(
        InvalidParameterError, match=r"training\.lr: 'lr' and 'learning_rate' name the same"
    ):
        from_dict(VisionConfig, {"training": {"learning_rate": 0.1, "lr": 0.2}})


def test_optimization_values_out_of_range_name_the_training_key():
    with pytest.raises(InvalidParameterError, match=r"^training\.grad_clip: expected a positive"):
        from_dict(VisionConfig, {"training": {"grad_clip": -1.0}})
    with pytest.raises(InvalidParameterError, match=r"^training\.lr_schedule: expected one of"):
        from_dict(VisionConfig, {"training": {"lr_schedule": "step"}})
    with pytest.raises(InvalidParameterError, match=r"^training\.learning_rate: expected a pos"):
        from_dict(VisionConfig, {"training": {"learning_rate": 0.0}})


def schedule(epochs: int, reconstruction: int, independence: int, **sections) -> dict:
    config = {
        "data": {"dataset": "scenes"},
        "training": {
            "epochs": epochs,
            "reconstruction_epochs": reconstruction,
            "independence_start_epoch": independence,
        },
    }
    config.update(sections)
    return config


def test_a_schedule_whose_stages_never_start_is_refused_naming_the_keys():
    with pytest.raises(InvalidParameterError) as error:
        from_dict(VisionConfig, schedule(3, 5, 20))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "training.reconstruction_epochs: 5, training.independence_start_epoch: 20: "
        "expected below training.epochs (3)"
    )
    with pytest.raises(InvalidParameterError, match=r"^training\.independence_start_epoch: 3: "):
        from_dict(VisionConfig, schedule(3, 1, 3))
    assert from_dict(VisionConfig, schedule(3, 1, 2)).training.epochs == 3


def test_stages_that_do_not_exist_are_not_checked():
    from_dict(VisionConfig, schedule(3, 5, 20, model={"kind": "ew"}))
    no_terms = {"cka_weight": 0.0, "cfa_weight": 0.0}
    from_dict(VisionConfig, schedule(3, 5, 20, model={"grounding": "none"}, method=no_terms))
    with pytest.raises(InvalidParameterError, match=r"^training\.independence_start_epoch: 20"):
        from_dict(VisionConfig, schedule(3, 5, 20, model={"grounding": "none"}))


def test_the_debiased_cka_batch_check_is_config_validation():
    with pytest.raises(InvalidParameterError, match=r"^training\.batch_size: expected at least 4"):
        from_dict(VisionConfig, {"data": {"dataset": "scenes"}, "training": {"batch_size": 2}})
    from_dict(
        VisionConfig,
        {"data": {"dataset": "scenes"}, "training": {"batch_size": 2}, "method": {"cka_weight": 0}},
    )


def test_build_run_leaves_its_config_as_it_is_and_records_the_resolved_reference(tmp_path):
    reference_file = tmp_path / "reference.json"
    reference_file.write_text(json.dumps({"segmentation/miou": 0.5, "depth/abs_err": 0.2}))
    config = from_dict(
        VisionConfig,
        {
            "data": {
                "dataset": "scenes",
                "resolution": [16, 16],
                "scenes": {"train_size": 8, "test_size": 2},
                "val_fraction": 0.25,
                "num_classes": 5,
            },
            "model": {"kind": "ew", "arch": "resnet18", "weights": "random"},
            "training": {"epochs": 1, "batch_size": 2},
            "run": {
                "output_dir": str(tmp_path / "out"),
                "single_task_reference": {"depth/abs_err": 0.3},
                "single_task_reference_file": str(reference_file),
            },
        },
    )
    before = config.to_dict()
    run = build_run(config)
    assert config.to_dict() == before
    assert run.reference.values == {"segmentation/miou": 0.5, "depth/abs_err": 0.2}
    assert run.reference.ignored_inline == ("depth/abs_err",)
    recorded = json.loads(run.trainer.checkpoint_metadata["config"])
    assert recorded["run"]["single_task_reference"] == run.reference.values


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as a dotted name."""
    package = "experiments.vision"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = f"{package}.{node.module or ''}" if node.level == 1 else node.module
            names.add(base.rstrip("."))
            names.update(f"{base.rstrip('.')}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_training_and_the_single_task_references_import_one_way():
    vision = CONFIGS.parent
    assert "experiments.vision.single_task" not in _imported_modules(vision / "training.py")
    reference = _imported_modules(vision / "reference.py")
    assert not {"experiments.vision.training", "experiments.vision.single_task"} & reference
    assert "experiments.vision.training" in _imported_modules(vision / "single_task.py")


def test_an_override_by_either_name_replaces_the_value_of_the_file(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("data: {dataset: scenes}\ntraining: {lr: 0.01}\n")
    for override in ("training.lr=0.5", "training.learning_rate=0.5"):
        assert load_config(path, [override]).training.learning_rate == 0.5
    assert load_config(CONFIGS / "nyuv2.yaml", ["training.lr=0.5"]).training.learning_rate == 0.5

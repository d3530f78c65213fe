"""Training the vision pipeline (on coremtl's one trainer) on tiny data: losses go down, the
staged schedule, exact resume from inside an epoch, the CLI, DDP on gloo."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from gloo import free_port, init_gloo

from coremtl.trainer import NonFiniteError
from coremtl_cli.main import main
from experiments.vision.config import VisionConfig
from experiments.vision.datasets.synthetic import write_tiny_dataset
from experiments.vision.training import build_run, first_batch, train, training_step

STEPS = 4


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_dataset(
        tmp_path_factory.mktemp("tiny"), num_train=10, num_test=4, height=16, width=32
    )


@pytest.fixture(scope="module")
def tiny_config(tiny_vision_config):
    """``tiny_config(root, output, **sections)``: two epochs of one batch of the tiny model on the
    tiny NYUv2 files at ``root``, written to ``output``; ``sections`` update the defaults."""

    def build(root: Path, output: Path, **sections) -> VisionConfig:
        data = {
            "data": {
                "dataset": "nyuv2",
                "root": str(root),
                "resolution": [16, 32],
                "val_fraction": 0.2,
            },
            "model": {},
            "method": {"cka_warmup_steps": 0, "cfa_probability": 1.0},
            "training": {
                "epochs": 2,
                "batch_size": 4,
                "warmup_steps": 0,
                "learning_rate": 1e-3,
                "max_batches_per_epoch": 1,
            },
            "run": {"output_dir": str(output), "seed": 3, "num_sample_images": 2},
        }
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return tiny_vision_config(**data)

    return build


@pytest.mark.parametrize(
    ("kind", "balancer"), [("core-mtl", "ew"), ("ew", "ew"), ("pcgrad", "pcgrad")]
)
def test_a_few_steps_on_one_batch_lower_the_task_losses(
    data_root, tmp_path, kind, balancer, tiny_config
):
    config = tiny_config(
        data_root,
        tmp_path,
        model={"kind": kind},
        training={"balancer": balancer, "learning_rate": 2e-3},
    )
    run = build_run(config)
    batch = first_batch(run)
    records = [training_step(run, batch) for _ in range(STEPS)]
    totals = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in records]
    assert totals[-1] < totals[0]
    if kind == "core-mtl":
        assert {"term/cka", "term/cfa", "term/grounding/render"} <= set(records[0])


@pytest.mark.parametrize("balancer", ["uw", "famo"])
def test_balancers_with_learned_weights_update_them_in_a_step(
    data_root, tmp_path, balancer, tiny_config
):
    config = tiny_config(data_root, tmp_path, model={"kind": balancer})
    run = build_run(config)
    before = {k: v.clone() for k, v in run.balancer.state_dict()["module"].items()}
    assert before
    batch = first_batch(run)
    record = training_step(run, batch)
    assert all(math.isfinite(v) for k, v in record.items() if k != "stage")
    after = run.balancer.state_dict()["module"]
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_staged_schedule_switches_terms_on(data_root, tmp_path, tiny_config):
    config = tiny_config(
        data_root,
        tmp_path,
        training={"epochs": 3, "reconstruction_epochs": 1, "independence_start_epoch": 2},
    )
    run = build_run(config)
    train(run)
    assert [record["tasks_active"] for record in run.history] == [False, True, True]
    assert [record["terms_active"] for record in run.history][1:] == [
        ["grounding"],
        ["grounding", "independence"],
    ]
    first, second, third = (record["train"] for record in run.history)
    assert not any(k.startswith("loss/") for k in first) and "term/grounding/render" in first
    assert "term/cka" not in second and "loss/depth" in second
    assert "term/cka" in third and "term/cfa" in third


def test_a_run_killed_inside_an_epoch_resumes_bit_identical_to_an_uninterrupted_one(
    data_root, tmp_path, tiny_config
):
    options = {
        "training": {"epochs": 2, "max_batches_per_epoch": 2, "checkpoint_every": 1},
        "method": {"cfa_probability": 0.5},
        "data": {"augment": True},
    }
    whole = build_run(tiny_config(data_root, tmp_path / "whole", **options))
    train(whole)
    first = build_run(tiny_config(data_root, tmp_path / "split", **options))
    train(first, stop_after_steps=3)
    assert first.step == 3 and first.epoch == 1
    resumed = build_run(tiny_config(data_root, tmp_path / "split", **options))
    report = train(resumed, resume=True)
    assert report["epochs"] == 2 and resumed.step == whole.step == 4
    expected = whole.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert resumed.history == whole.history


def test_nan_input_is_reported_with_key_and_step(data_root, tmp_path, tiny_config):
    run = build_run(tiny_config(data_root, tmp_path, model={"kind": "ew"}))
    batch = first_batch(run)
    batch["depth"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="batch key 'depth' holds NaN or infinity at step 0"):
        training_step(run, batch)


def test_cli_train_writes_outputs_and_evaluate_reproduces_the_selected_test_metrics(
    data_root, tmp_path, capsys, tiny_config
):
    config_path = tmp_path / "run.yaml"
    config = tiny_config(
        data_root,
        tmp_path / "out",
        model={"kind": "pcgrad"},
        training={"epochs": 1},
    )
    import yaml

    config_path.write_text(yaml.safe_dump(config.to_dict()))
    assert main(["train", "--config", str(config_path)]) == 0
    out = tmp_path / "out"
    for name in (
        "config.json",
        "metrics.jsonl",
        "final_metrics.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "images/segmentation.png",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "final_metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "checkpoints" / "best.pt")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == pytest.approx(report["test_at_selected"], rel=1e-6)
    rows = (out / "metrics.jsonl").read_text()
    assert main(["train", "--config", str(config_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "already holds a run" in error and "--overwrite" in error and "\n" not in error
    assert (out / "metrics.jsonl").read_text() == rows
    lr = ["--set", "training.learning_rate=0.5"]
    assert main(["train", "--config", str(config_path), "--resume", *lr]) == 2
    assert "trainer.learning_rate: 0.001 -> 0.5" in capsys.readouterr().err
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((out / "checkpoints" / "best.pt").read_bytes()[:64])
    assert main(["evaluate", "--checkpoint", str(truncated)]) == 2
    assert "truncated" in capsys.readouterr().err
    config_path.write_text("training: {epochs: 0}\n")
    assert main(["train", "--config", str(config_path)]) == 2
    assert "training.epochs: expected a positive integer" in capsys.readouterr().err


def _ddp_worker(rank: int, world_size: int, port: int, config: VisionConfig, output: str) -> None:
    import torch.distributed as dist

    init_gloo(rank, world_size, port)
    try:
        run = build_run(config)
        first_image = first_batch(run)["image"]
        train(run)
        torch.save(
            {
                "params": [p.detach() for p in run.model.parameters()],
                "first_image": first_image,
                "steps": run.step,
            },
            Path(output) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_run_keeps_parameters_equal_across_ranks(data_root, tmp_path, tiny_config):
    world_size = 2
    config = tiny_config(
        data_root,
        tmp_path,
        training={"epochs": 2, "max_batches_per_epoch": 1, "batch_size": 4},
    )
    mp.spawn(
        _ddp_worker,
        args=(world_size, free_port(), config, str(tmp_path)),
        nprocs=world_size,
        join=True,
    )
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world_size)]
    assert not torch.equal(states[0]["first_image"], states[1]["first_image"])
    assert states[0]["steps"] == states[1]["steps"] == 2
    assert (tmp_path / "final_metrics.json").is_file()
    initial = build_run(tiny_config(data_root, tmp_path / "init")).model
    moved = False
    for p0, p1, p_init in zip(
        states[0]["params"], states[1]["params"], initial.parameters(), strict=True
    ):
        assert torch.equal(p0, p1)
        moved = moved or not torch.equal(p0, p_init.detach())
    assert moved


def test_soft_grounding_runs_write_reconstruction_and_counterfactual_images(
    data_root, tmp_path, tiny_config
):
    from experiments.vision.images import write_sample_images

    run = build_run(tiny_config(data_root, tmp_path, model={"grounding": "soft"}))
    names = {path.name for path in write_sample_images(run, tmp_path / "images")}
    assert {"input.png", "reconstruction.png", "counterfactual.png"} <= names
    assert "albedo.png" not in names


@pytest.mark.parametrize("balancer", ["ew", "pcgrad"])
def test_the_skip_connection_ablation_trains_with_cfa_and_any_balancer(
    data_root, tmp_path, balancer, tiny_config
):
    config = tiny_config(
        data_root,
        tmp_path,
        model={"skip_connection": True},
        training={"balancer": balancer, "learning_rate": 2e-3},
    )
    run = build_run(config)
    batch = first_batch(run)
    records = [training_step(run, batch) for _ in range(STEPS)]
    assert "term/cfa" in records[0]
    totals = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in records]
    assert totals[-1] < totals[0]


def test_hard_grounding_terms_reuse_the_normal_prediction_without_changing_them(
    data_root, tmp_path, tiny_config
):
    from coremtl.hard_grounding import HardGroundingTerms

    run = build_run(tiny_config(data_root, tmp_path))
    model = run.model
    assert model.decoder.normal_head is model.heads["normal"]
    batch = first_batch(run)
    model.eval()
    forward = model(batch["image"])
    method = run.config.method
    source = HardGroundingTerms(
        method.reconstruction_weight,
        method.tv_weight,
        method.achromatic_weight,
        method.correlation_weight,
        input_key="image",
    )
    reused = source.terms(model, batch, forward, 0)
    forward.predictions.pop("normal")
    recomputed = source.terms(model, batch, forward, 0)
    assert reused.keys() == recomputed.keys()
    for name in reused:
        assert torch.allclose(reused[name], recomputed[name], rtol=1e-6, atol=1e-7), name

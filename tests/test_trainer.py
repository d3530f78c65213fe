"""The trainer: exact resume, errors on non-finite values, logging, schedule, model selection."""

from __future__ import annotations

import json
import math

import pytest
import torch
from small_trainer import TASKS, make_model, objective, task_losses, trainer

from coremtl.balancers import make_balancer
from coremtl.checkpoint import (
    UnsafeCheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from coremtl.trainer import NonFiniteError, ScheduledTerms, Trainer, TrainerConfig, epoch_order
from scm.validation import InvalidParameterError


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, tensors):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors["x"])

    def __getitem__(self, index):
        return {key: value[index] for key, value in self.tensors.items()}


class Killed(Exception):
    pass


def kill_at(step_to_die: int):
    def probe(model, batch, forward, step):
        if step == step_to_die:
            raise Killed
        return {}

    return probe


@pytest.mark.parametrize(
    ("balancer", "as_dataset"), [("ew", False), ("pcgrad", False), ("uw", False), ("ew", True)]
)
def test_a_run_killed_and_resumed_ends_bit_for_bit_equal_to_an_uninterrupted_run(
    tmp_path, two_task_data, balancer, as_dataset
):
    """Killed during step 7 (4 steps per epoch, last checkpoint after step 5, mid-epoch 1, the
    log holding step 6 already), resumed from that checkpoint."""
    data = DictDataset(two_task_data) if as_dataset else two_task_data
    full = trainer(tmp_path / "full", balancer)
    full.fit(data)
    killed = trainer(tmp_path / "resumed", balancer, checkpoint_every=5, probe_every=1)
    killed.probes = {"kill": kill_at(6)}
    with pytest.raises(Killed):
        killed.fit(data)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 5
    resumed = trainer(tmp_path / "resumed", balancer, checkpoint_every=5)
    summary = resumed.fit(data, resume=True)
    assert summary["step"] == full.step == 8
    for (name, expected), actual in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(expected, actual), name
    for expected, actual in zip(full.balancer_params, resumed.balancer_params, strict=True):
        assert torch.equal(expected, actual)
    rows = [(tmp_path / run / "metrics.jsonl").read_text() for run in ("full", "resumed")]
    assert rows[0] == rows[1]


def test_stop_after_steps_checkpoints_where_it_stops(tmp_path, two_task_data):
    summary = trainer(tmp_path, stop_after_steps=5).fit(two_task_data)
    assert summary["stopped"] and summary["step"] == 5
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (5, 1, 1)


def test_a_dataset_and_a_mapping_of_tensors_train_identically(tmp_path, two_task_data):
    from_mapping = trainer(tmp_path / "mapping", epochs=1)
    from_mapping.fit(two_task_data)
    from_dataset = trainer(tmp_path / "dataset", epochs=1)
    from_dataset.fit(DictDataset(two_task_data))
    for expected, actual in zip(
        from_mapping.model.parameters(), from_dataset.model.parameters(), strict=True
    ):
        assert torch.equal(expected, actual)


def test_a_non_finite_task_loss_stops_the_run_naming_task_and_step(tmp_path, two_task_data):
    losses = task_losses()
    losses["b"] = lambda prediction, batch: prediction.sum() * float("nan")
    run = Trainer(
        make_model(),
        losses,
        make_balancer("ew", list(TASKS)),
        TrainerConfig(batch_size=12, progress=False),
        tmp_path,
    )
    with pytest.raises(NonFiniteError, match="loss of task 'b' is nan at step 0"):
        run.fit(two_task_data)


def test_a_batch_with_nan_inputs_is_an_error_naming_the_key_and_step(tmp_path, two_task_data):
    corrupted = {key: value.clone() for key, value in two_task_data.items()}
    order = epoch_order(48, seed=3, epoch=0)
    corrupted["x"][order[30], 1] = float("nan")
    with pytest.raises(NonFiniteError, match="batch key 'x' holds NaN or infinity at step 2"):
        trainer(tmp_path).fit(corrupted)


def test_outputs_config_metrics_and_the_warmup_cosine_schedule(tmp_path, two_task_data):
    run = trainer(tmp_path, learning_rate=1e-2, warmup_steps=2)
    run.fit(two_task_data)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (
        config["trainer"]["seed"] == 3 and config["objective"][0]["source"]["cfa_mode"] == "input"
    )
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 9))
    lrs = [row["lr"] for row in rows]
    expected = [1e-2 / 3, 2e-2 / 3] + [
        1e-2 * 0.5 * (1 + math.cos(math.pi * t / 6)) for t in range(6)
    ]
    assert lrs == pytest.approx(expected, rel=1e-6)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss/a", "term/cka", "term/reconstruction", "weight/b"} <= set(header)
    assert isinstance(run.optimizer, torch.optim.AdamW)
    assert run.optimizer.param_groups[0]["weight_decay"] == 1e-4


@pytest.mark.parametrize(("mode", "best_epoch"), [("min", 1), ("max", 0)])
def test_the_best_checkpoint_follows_the_selection_metric(
    tmp_path, two_task_data, mode, best_epoch
):
    scores = iter([2.0, 1.0])
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(
            epochs=2, batch_size=24, progress=False, selection_metric="score", selection_mode=mode
        ),
        tmp_path,
        validate=lambda model: {"score": next(scores)},
    )
    assert run.fit(two_task_data)["best"]["epoch"] == best_epoch
    assert load_checkpoint(tmp_path / "best.pt")["best"]["epoch"] == best_epoch


def test_probes_are_called_every_n_steps_and_logged(tmp_path, two_task_data):
    calls = []

    def probe(model, batch, forward, step):
        calls.append(step)
        return {"norm": float(forward.z_s.detach().norm())}

    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(epochs=1, batch_size=12, progress=False, probe_every=2),
        tmp_path,
        probes={"z": probe},
    )
    run.fit(two_task_data)
    assert calls == [0, 2]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "probe/z/norm" in row] == [1, 3]


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_loading_refuses_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint: no file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoints_are_replaced_atomically_and_round_trip_rng_states(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint({"value": torch.tensor(1)}, path)
    state = rng_state()
    save_checkpoint({"value": torch.tensor(2), "rng": state}, path)
    expected = (torch.rand(3), float(__import__("random").random()))
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert __import__("random").random() == expected[1]
    assert loaded["value"].item() == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_bad_settings_name_the_parameter(tmp_path, two_task_data):
    with pytest.raises(InvalidParameterError, match="batch_size: expected a positive integer"):
        TrainerConfig(batch_size=0)
    with pytest.raises(InvalidParameterError, match="selection_mode: expected 'min' or 'max'"):
        TrainerConfig(selection_mode="best")
    with pytest.raises(InvalidParameterError, match="grad_clip: expected a positive number"):
        TrainerConfig(grad_clip=-1.0)
    with pytest.raises(InvalidParameterError, match="validate: a selection_metric needs"):
        Trainer(
            make_model(),
            task_losses(),
            make_balancer("ew", list(TASKS)),
            TrainerConfig(selection_metric="score"),
            tmp_path,
        )
    with pytest.raises(InvalidParameterError, match="batch_size: 64 leaves no full batch"):
        trainer(tmp_path, batch_size=64).fit(two_task_data)


class ConstantTerm:
    """A term source that records the steps it is called with."""

    def __init__(self, name: str):
        self.name = name
        self.steps: list[int] = []

    def terms(self, model, batch, forward, step, task_losses_fn=None, generator=None):
        self.steps.append(step)
        return {self.name: forward.z_r.square().mean()}


def test_scheduled_terms_start_at_their_epoch_and_count_steps_from_there(tmp_path, two_task_data):
    early, late = ConstantTerm("early"), ConstantTerm("late")
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(epochs=3, batch_size=12, progress=False, task_start_epoch=1),
        tmp_path,
        objective=[early, ScheduledTerms(late, start_epoch=2, name="late term")],
    )
    run.fit(two_task_data)
    assert early.steps == list(range(12)) and late.steps == [0, 1, 2, 3]
    assert [r["tasks_active"] for r in run.history] == [False, True, True]
    assert [r["terms_active"] for r in run.history] == [
        ["ConstantTerm"],
        ["ConstantTerm"],
        ["ConstantTerm", "late term"],
    ]
    assert "loss/a" not in run.history[0]["train"] and "loss/a" in run.history[1]["train"]
    assert "term/late" in run.history[2]["train"] and "term/late" not in run.history[1]["train"]
    epochs = [json.loads(line) for line in (tmp_path / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]


class EveryOtherStep:
    """A term of value 2 on the even steps and absent on the odd ones."""

    def terms(self, model, batch, forward, step, task_losses_fn=None, generator=None):
        return {"sparse": 2.0 + 0.0 * forward.z_r.sum()} if step % 2 == 0 else {}


def test_an_intermittent_term_is_averaged_over_the_steps_it_was_active(tmp_path, two_task_data):
    """The epoch mean of a term drawn on some steps only (CFA at probability p) is its mean over
    those steps, with their count beside it, not the sum divided by all steps of the epoch."""
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(epochs=2, batch_size=12, progress=False, seed=3),
        tmp_path,
        objective=[EveryOtherStep(), objective()],
    )
    run.fit(two_task_data)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for record in run.history:
        epoch_rows = [row for row in rows if row["epoch"] == record["epoch"] and "lr" in row]
        assert record["train"]["term/sparse"] == 2.0
        assert record["train_steps"]["term/sparse"] == 2 and record["train_steps"]["lr"] == 4
        cfa = [row["term/cfa"] for row in epoch_rows if "term/cfa" in row]
        assert 0 < len(cfa) < len(epoch_rows)
        assert record["train_steps"]["term/cfa"] == len(cfa)
        assert record["train"]["term/cfa"] == pytest.approx(sum(cfa) / len(cfa), rel=1e-12)
        losses = [row["loss/a"] for row in epoch_rows]
        assert record["train"]["loss/a"] == pytest.approx(sum(losses) / len(losses), rel=1e-12)


def test_an_epoch_with_neither_tasks_nor_terms_is_refused(tmp_path, two_task_data):
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(epochs=2, batch_size=12, progress=False, task_start_epoch=1),
        tmp_path,
    )
    with pytest.raises(InvalidParameterError, match="task_start_epoch: epoch 0 trains neither"):
        run.fit(two_task_data)


def test_validation_selects_and_the_test_split_is_reported_alongside(tmp_path, two_task_data):
    scores = iter([3.0, 1.0, 2.0])
    tests = iter([30.0, 10.0, 20.0])
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(
            epochs=3,
            batch_size=12,
            progress=False,
            selection_metric="score",
            max_batches_per_epoch=2,
        ),
        tmp_path,
        validate=lambda model: {"score": next(scores)},
        test=lambda model: {"error": next(tests)},
        checkpoint_dir=tmp_path / "checkpoints",
        checkpoint_metadata={"note": "kept"},
    )
    summary = run.fit(two_task_data)
    assert summary["step"] == 6
    assert summary["best"]["epoch"] == 1 and summary["best"]["test"] == {"error": 10.0}
    assert [r["test"]["error"] for r in run.history] == [30.0, 10.0, 20.0]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["note"] == "kept" and best["best"]["val"] == {"score": 1.0}
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["note"] == "kept"


def test_vectors_can_be_exempt_from_weight_decay(tmp_path, two_task_data):
    run = trainer(tmp_path, weight_decay_on_vectors=False)
    run.prepare(two_task_data)
    decayed, exempt = run.optimizer.param_groups[:2]
    assert decayed["weight_decay"] == 1e-4 and exempt["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"])
    assert all(p.ndim <= 1 for p in exempt["params"]) and exempt["params"]


def test_batch_order_depends_on_the_epoch_only_and_process_shares_are_disjoint(
    tmp_path, two_task_data, monkeypatch
):
    from coremtl import distributed

    run = trainer(tmp_path, batch_size=5, max_batches_per_epoch=0)
    once = run.epoch_batches(two_task_data, 2)
    assert all(
        torch.equal(a, b) for a, b in zip(run.epoch_batches(two_task_data, 2), once, strict=True)
    )
    assert len(once) == 9 and not torch.equal(
        torch.cat(run.epoch_batches(two_task_data, 3)), torch.cat(once)
    )
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shares.append(torch.cat(run.epoch_batches(two_task_data, 2)).tolist())
    assert len(shares[0]) == len(shares[1]) == 20 and not set(shares[0]) & set(shares[1])
    assert (
        len(
            trainer(tmp_path, batch_size=5, max_batches_per_epoch=3).epoch_batches(two_task_data, 0)
        )
        == 3
    )


def test_a_run_without_output_dir_writes_nothing_and_keeps_a_constant_rate(
    tmp_path, two_task_data, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(
            epochs=2, batch_size=12, progress=False, learning_rate=0.01, lr_schedule="constant"
        ),
        None,
        objective=objective(),
        validate=lambda model: {"score": 1.0},
    )
    summary = run.fit(two_task_data)
    assert summary["step"] == 8 and len(run.history) == 2
    assert run.history[1]["train"]["lr"] == pytest.approx(0.01)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidParameterError, match="resume: a run without an output_dir"):
        run.fit(two_task_data, resume=True)
    with pytest.raises(InvalidParameterError, match="lr_schedule: expected one of"):
        TrainerConfig(lr_schedule="step")


def test_a_task_loss_vector_gives_the_same_losses_as_the_per_task_functions(
    tmp_path, two_task_data
):
    def both_columns(predictions, batch):
        stacked = torch.cat([predictions[name] for name in TASKS], dim=1)
        return (stacked - batch["y"]).square().mean(dim=0)

    run = trainer(tmp_path)
    vector = Trainer(
        make_model(),
        task_losses(),
        make_balancer("ew", list(TASKS)),
        TrainerConfig(progress=False),
        tmp_path / "vector",
        task_loss_vector=both_columns,
    )
    batch = {key: value[:12] for key, value in two_task_data.items()}
    forward = run.model(batch["x"])
    expected = run.task_losses_fn(forward.predictions, batch)
    got = vector.task_losses_fn(forward.predictions, batch)
    assert list(got) == list(TASKS)
    assert all(torch.allclose(got[t], expected[t]) for t in TASKS)
    vector.task_loss_vector = lambda predictions, batch: torch.zeros(3)
    with pytest.raises(
        InvalidParameterError, match=r"task_loss_vector: expected a tensor of shape \(2,\)"
    ):
        vector.task_losses_fn(forward.predictions, batch)


def test_a_checkpoint_without_step_counts_resumes_with_every_value_counted_each_step():
    from coremtl.run_log import EpochMeans

    means = EpochMeans()
    means.load_state_dict({"epoch_sums": {"lr": 3.0, "term/cfa": 1.0}, "epoch_count": 3})
    means.add({"lr": 1.0, "term/cfa": 3.0, "epoch": 0})
    assert means.means() == {"lr": 1.0, "term/cfa": 1.0}
    assert means.counts == {"lr": 4, "term/cfa": 4} and means.steps == 4

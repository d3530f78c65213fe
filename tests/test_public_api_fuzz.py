"""The public API under malformed input: ``coremtl.train`` and ``coremtl.evaluate`` fed a table of
wrong data, labels, tasks and options either train (score) correctly or raise one
:class:`InvalidParameterError` whose one-line message starts with the argument it is about; any
other exception (a traceback from inside torch, torchmetrics, torchjd or cvxpy) fails the test.

Every defect of the data is tried on ``data``, ``val_data`` and ``test_data`` of ``train`` and on
the ``data`` of ``evaluate``: one check serves them all (:mod:`coremtl.data_check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import coremtl
from coremtl import Task
from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError

N, FEATURES = 16, 4
TASKS = (Task("c", "classification", 3), Task("r", "regression", 1))


def backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU())


def frozen() -> nn.Module:
    module = backbone()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def data() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(N, FEATURES, generator=generator),
        "c": torch.randint(0, 3, (N,), generator=generator),
        "r": torch.randn(N, generator=generator),
    }


def changed(**entries: Any) -> Callable[[], dict]:
    """The valid data with some entries replaced (``None``: removed)."""

    def make() -> dict:
        made = data()
        for key, value in entries.items():
            if value is None:
                del made[key]
            else:
                made[key] = value(made) if callable(value) else value
        return made

    return make


class Samples(torch.utils.data.Dataset):
    """The valid data as a dataset of per-sample dicts, with an optional defect in sample 0."""

    def __init__(self, drop: str | None = None) -> None:
        self.data, self.drop = data(), drop

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> dict:
        sample = {key: value[index] for key, value in self.data.items()}
        if self.drop is not None and index == 0:
            del sample[self.drop]
        return sample


def with_labels(key: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], dict]:
    return changed(**{key: lambda d: make(d[key])})


def ignored_at(count: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def make(labels: torch.Tensor) -> torch.Tensor:
        labels = labels.clone()
        labels[:count] = -1
        return labels

    return make


DATA_DEFECTS: dict[str, tuple[Callable[[], Any], str | None]] = {
    # name: (data maker, the entry the refusal names after the argument; None: it trains)
    "classes out of range": (with_labels("c", lambda y: y + 5), "['c']"),
    "ignore index -100": (with_labels("c", lambda y: torch.where(y == 0, -100, y)), "['c']"),
    "non-integral float classes": (with_labels("c", lambda y: y.float() + 0.5), "['c']"),
    "whole float classes": (with_labels("c", lambda y: y.float()), None),
    "some classes ignored (-1)": (with_labels("c", ignored_at(5)), None),
    "every class ignored (-1)": (with_labels("c", ignored_at(N)), None),
    "classes of shape (B, 1)": (with_labels("c", lambda y: y[:, None]), "['c']"),
    "classes as a list": (with_labels("c", lambda y: y.tolist()), "['c']"),
    "regression of shape (B, 3)": (with_labels("r", lambda y: y[:, None].repeat(1, 3)), "['r']"),
    "regression with infinity": (
        with_labels("r", lambda y: y.index_fill(0, torch.tensor([2]), math.inf)),
        "['r']",
    ),
    "regression as integers": (with_labels("r", lambda y: y.round().long()), None),
    "NaN input": (changed(x=lambda d: d["x"].index_fill(0, torch.tensor([1]), math.nan)), "['x']"),
    "uint8 input": (changed(x=lambda d: d["x"].abs().mul(50).to(torch.uint8)), "['x']"),
    "float64 input": (changed(x=lambda d: d["x"].double()), None),
    "float16 input": (changed(x=lambda d: d["x"].half()), None),
    "a 0-d entry": (changed(extra=torch.tensor(1.0)), "['extra']"),
    "labels missing": (changed(r=None), ""),
    "inputs missing": (changed(x=None), ""),
    "unequal lengths": (changed(c=lambda d: d["c"][:3]), ""),
    "no samples": (
        changed(x=lambda d: d["x"][:0], c=lambda d: d["c"][:0], r=lambda d: d["r"][:0]),
        "",
    ),
    "a tensor, not a mapping": (lambda: torch.zeros(N, FEATURES), ""),
    "a string": (lambda: "data.pt", ""),
    "a list of numbers": (lambda: [1, 2, 3], ""),
    "an empty list": (lambda: [], ""),
    "a dataset of dicts": (Samples, None),
    "a dataset whose first sample lacks a label": (lambda: Samples(drop="r"), ""),
}
SPLITS = ("data", "val_data", "test_data")


@dataclass
class Case:
    """One call of ``coremtl.train``: its keyword arguments over the valid ones, and the
    argument its refusal names (``None``: it trains)."""

    arguments: Callable[[], dict]
    names: str | None
    method: str = "ew"


def valid(**overrides: Any) -> Callable[[], dict]:
    def make() -> dict:
        return {"backbone": backbone(), "tasks": TASKS, "data": data(), **overrides}

    return make


def lazily(**makers: Callable[[], Any]) -> Callable[[], dict]:
    def make() -> dict:
        arguments = valid()()
        arguments.update({key: maker() for key, maker in makers.items()})
        return arguments

    return make


TRAIN_CASES: dict[str, Case] = {}
for defect, (maker, entry) in DATA_DEFECTS.items():
    for split in SPLITS:
        names = None if entry is None else split + entry
        TRAIN_CASES[f"{split}: {defect}"] = Case(lazily(**{split: maker}), names)

TRAIN_CASES.update(
    {
        "tasks: empty": Case(valid(tasks=[]), "tasks"),
        "tasks: a string": Case(valid(tasks="c"), "tasks"),
        "tasks: tuples, not Task": Case(valid(tasks=[("c", "classification", 3)]), "tasks"),
        "tasks: one Task alone": Case(valid(tasks=Task("c", "classification", 3)), None),
        "tasks: duplicate names": Case(valid(tasks=[TASKS[0], TASKS[0]]), "tasks"),
        "tasks: a dotted name": Case(
            lambda: valid(tasks=[Task("c.1", "classification", 3)])(), "task name"
        ),
        "tasks: unknown kind": Case(
            lambda: valid(tasks=[Task("c", "ranking", 3)])(), "tasks['c'].kind"
        ),
        "tasks: zero outputs": Case(
            lambda: valid(tasks=[Task("c", "classification", 0)])(), "tasks['c'].outputs"
        ),
        "tasks: outputs as a string": Case(
            lambda: valid(tasks=[Task("c", "classification", "3")])(), "tasks['c'].outputs"
        ),
        "tasks: a target that is not a key": Case(
            valid(tasks=[Task("c", "classification", 3, target="label")]), "data"
        ),
        "tasks: a target that is a number": Case(
            lambda: valid(tasks=[Task("c", "classification", 3, target=5)])(), "tasks['c'].target"
        ),
        "tasks: a target under another name": Case(
            valid(tasks=[Task("k", "classification", 3, target="c")]), None
        ),
        "tasks: dense on vector inputs": Case(valid(tasks=[Task("c", "dense", 3)]), "data['x']"),
        "tasks: binary on classes 0..2": Case(
            valid(tasks=[Task("c", "classification", 1)]), "data['c']"
        ),
        "tasks: binary on 0/1 floats": Case(
            lambda: {
                **valid(tasks=[Task("c", "classification", 1)])(),
                "data": changed(c=lambda d: (d["c"] > 0).float())(),
            },
            None,
        ),
        "tasks: regression with 2 outputs on (B,)": Case(
            valid(tasks=[Task("r", "regression", 2)]), "data['r']"
        ),
        "method: unknown": Case(valid(), "method", method="sgd"),
        "method: a number": Case(valid(), "method", method=5),
        "backbone: a function": Case(valid(backbone=torch.relu), "backbone"),
        "backbone: frozen, pcgrad": Case(lazily(backbone=frozen), "backbone", method="pcgrad"),
        "backbone: frozen, cagrad": Case(lazily(backbone=frozen), "backbone", method="cagrad"),
        "backbone: frozen, gradnorm": Case(lazily(backbone=frozen), "backbone", method="gradnorm"),
        "backbone: frozen, rep-mtl": Case(lazily(backbone=frozen), "backbone", method="rep-mtl"),
        "backbone: frozen, ew": Case(lazily(backbone=frozen), None),
        "backbone: parameter-free, nashmtl": Case(
            valid(backbone=nn.Identity()), "backbone", method="nashmtl"
        ),
        "backbone: parameter-free, core-mtl": Case(
            valid(backbone=nn.Identity(), epochs=2), None, method="core-mtl"
        ),
        "epochs: 0": Case(valid(epochs=0), "epochs"),
        "epochs: a string": Case(valid(epochs="2"), "epochs"),
        "epochs: a float": Case(valid(epochs=1.5), "epochs"),
        "batch_size: 0": Case(valid(batch_size=0), "batch_size"),
        "batch_size: negative": Case(valid(batch_size=-8), "batch_size"),
        "batch_size: a float": Case(valid(batch_size=8.0), "batch_size"),
        "batch_size: True": Case(valid(batch_size=True), "batch_size"),
        "batch_size: larger than the data": Case(valid(batch_size=64), "batch_size"),
        "batch_size: 2 for core-mtl": Case(valid(batch_size=2), "batch_size", method="core-mtl"),
        "learning_rate: a string": Case(valid(learning_rate="fast"), "learning_rate"),
        "learning_rate: negative": Case(valid(learning_rate=-1e-3), "learning_rate"),
        "learning_rate: NaN": Case(valid(learning_rate=math.nan), "learning_rate"),
        "learning_rate: infinity": Case(valid(learning_rate=math.inf), "learning_rate"),
        "seed: a string": Case(valid(seed="0"), "seed"),
        "seed: negative": Case(valid(seed=-1), "seed"),
        "seed: 2**70": Case(valid(seed=2**70), "seed"),
        "seed: a float": Case(valid(seed=1.5), "seed"),
        "seed: 2**63 - 1": Case(valid(seed=2**63 - 1), None),
        "device: cuda without CUDA": Case(
            valid(device="cuda:7" if torch.cuda.is_available() else "cuda"), "device"
        ),
        "device: tpu": Case(valid(device="tpu"), "device"),
        "device: a number": Case(valid(device=3.5), "device"),
        "output_dir: empty": Case(valid(output_dir=""), "output_dir"),
        "trainer_options: not a mapping": Case(
            valid(trainer_options=["grad_clip"]), "trainer_options"
        ),
        "trainer_options: unknown field": Case(
            valid(trainer_options={"momentum": 0.9}), "trainer_options"
        ),
        "trainer_options: a field train sets": Case(
            valid(trainer_options={"epochs": 3}), "trainer_options"
        ),
        "trainer_options: input_key honoured": Case(
            lambda: {
                **valid()(),
                "data": {"inp" if k == "x" else k: v for k, v in data().items()},
                "trainer_options": {"input_key": "inp"},
            },
            None,
        ),
        "trainer_options: input_key absent": Case(
            valid(trainer_options={"input_key": "inp"}), "data"
        ),
        "trainer_options: input_key a number": Case(
            valid(trainer_options={"input_key": 5}), "input_key"
        ),
        "trainer_options: grad_clip a string": Case(
            valid(trainer_options={"grad_clip": "1"}), "grad_clip"
        ),
        "trainer_options: selection without val_data": Case(
            valid(trainer_options={"selection_metric": "c/accuracy"}), "trainer_options"
        ),
        "trainer_options: selection of an unknown metric": Case(
            lazily(val_data=data, trainer_options=lambda: {"selection_metric": "c/f1"}),
            "selection_metric",
        ),
        "val_data: inputs of another width": Case(
            lazily(val_data=changed(x=lambda d: torch.randn(N, 5))), "val_data['x']"
        ),
        "streams: for ew": Case(valid(streams=(2, 2)), "streams"),
        "streams: a number for core-mtl": Case(valid(streams=4), "streams", method="core-mtl"),
        "streams: zero width": Case(valid(streams=(0, 4)), "streams", method="core-mtl"),
        "grounding: for pcgrad": Case(valid(grounding="none"), "grounding", method="pcgrad"),
        "grounding: hard for core-mtl": Case(
            valid(grounding="hard"), "grounding", method="core-mtl"
        ),
        "objective: for mt-crl": Case(
            valid(objective=CoreMTLObjective()), "objective", method="mt-crl"
        ),
        "objective: a dict for core-mtl": Case(
            valid(objective={"cka_weight": 1.0}), "objective", method="core-mtl"
        ),
        "stages: for ew": Case(valid(stages=(0, 0)), "stages"),
        "stages: a number": Case(valid(stages=1, epochs=2), "stages", method="core-mtl"),
        "stages: after the last epoch": Case(
            valid(stages=(0, 3), epochs=2), "epochs", method="core-mtl"
        ),
        "environment_key: for ew": Case(valid(environment_key="env"), "environment_key"),
        "balancer: for single-task": Case(
            valid(balancer="pcgrad"), "balancer", method="single-task"
        ),
        "balancer: a second one for pcgrad": Case(
            valid(balancer="mgda"), "balancer", method="pcgrad"
        ),
        "balancer: unknown": Case(valid(balancer="sgd", epochs=2), "balancer", method="core-mtl"),
        "balancer_options: unknown option": Case(valid(balancer_options={"tau": 1}), "balancer"),
        "balancer_options: not a mapping": Case(valid(balancer_options=[1]), "balancer_options"),
        "an option neither train nor build has": Case(valid(momentum=0.9), "momentum"),
    }
)


@pytest.mark.parametrize("case", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_train_trains_or_refuses_in_one_line_naming_the_argument(case: Case):
    try:
        arguments = {"epochs": 1, "batch_size": 8, **case.arguments()}
        result = coremtl.train(case.method, **arguments)
    except InvalidParameterError as error:
        message = str(error)
        assert case.names is not None, f"refused a valid call: {message}"
        assert message.startswith(case.names) and "\n" not in message, message
        return
    assert case.names is None, f"trained where {case.names} should have been refused"
    assert len(result.history) == arguments["epochs"]
    for split in ("val_data", "test_data"):
        if split in arguments:
            scores = result.val if split == "val_data" else result.test
            assert scores and all(
                math.isfinite(v) or name.endswith("accuracy") for name, v in scores.items()
            )


def trained_model() -> nn.Module:
    return coremtl.train("ew", backbone(), TASKS, data(), epochs=1, batch_size=8).model


EVALUATE_CASES: dict[str, tuple[Callable[[], dict], str | None]] = {
    f"data: {defect}": (
        lambda maker=maker: {"data": maker()},
        None if entry is None else "data" + entry,
    )
    for defect, (maker, entry) in DATA_DEFECTS.items()
}
EVALUATE_CASES.update(
    {
        "model: a function": (lambda: {"model": torch.relu}, "model"),
        "model: of another input width": (
            lambda: {"data": changed(x=lambda d: torch.randn(N, 7))()},
            "data['x']",
        ),
        "tasks: one the model does not predict": (
            lambda: {"tasks": [Task("z", "classification", 3, target="c")]},
            "tasks",
        ),
        "tasks: a string": (lambda: {"tasks": "c"}, "tasks"),
        "batch_size: 0": (lambda: {"batch_size": 0}, "batch_size"),
        "input_key: absent": (lambda: {"input_key": "image"}, "data"),
        "device: tpu": (lambda: {"device": "tpu"}, "device"),
    }
)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_model()


@pytest.mark.parametrize(("make", "names"), EVALUATE_CASES.values(), ids=EVALUATE_CASES.keys())
def test_evaluate_scores_or_refuses_in_one_line_naming_the_argument(make, names, model):
    try:
        scores = coremtl.evaluate(**{"model": model, "data": data(), "tasks": TASKS, **make()})
    except InvalidParameterError as error:
        message = str(error)
        assert names is not None, f"refused a valid call: {message}"
        assert message.startswith(names) and "\n" not in message, message
        return
    assert names is None, f"scored where {names} should have been refused"
    assert set(scores) == {"c/accuracy", "r/mse"}

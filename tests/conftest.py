import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

# pytest runs with two xdist workers on two cores: one intra-op thread per worker avoids
# oversubscription, which slows small backward passes by two orders of magnitude.
torch.set_num_threads(1)

from hypothesis_profiles import load_profile_from_environment  # noqa: E402

load_profile_from_environment()


@pytest.fixture(scope="session")
def two_task_data() -> dict[str, torch.Tensor]:
    """48 draws of a two-task SCM (k = 2), as torch tensors: the data of the trainer's tests."""
    import scm

    return scm.sample(scm.random_scm(k=2, num_tasks=2, seed=0), 48, seed=0, backend="torch")


TINY_VISION_MODEL = {
    "arch": "resnet18",
    "weights": "random",
    "semantic_channels": 16,
    "residual_channels": 8,
}
"""The ``model`` section of the vision tests: ResNet-18 from random weights, streams of 16 + 8."""


@pytest.fixture
def tiny_vision_section() -> dict:
    """A copy of :data:`TINY_VISION_MODEL`, for configs written as files."""
    return dict(TINY_VISION_MODEL)


@pytest.fixture(scope="session")
def tiny_vision_model():
    """Build the tiny vision model: ``build(kind, tasks, num_classes, **model_options)`` returns
    the model of ``model.kind`` ``kind`` for ``tasks`` (:data:`TINY_VISION_MODEL` with
    ``model_options`` over it; CelebA attributes or the dense tasks of 32 x 32 images), its new
    layers drawn after ``torch.manual_seed(0)``, with no weights file loaded."""
    from experiments.vision.attributes import attribute_tasks
    from experiments.vision.config import VisionConfig, from_dict
    from experiments.vision.model.build import build_model

    def build(
        kind: str = "core-mtl",
        tasks=("segmentation", "depth", "normal"),
        num_classes: int = 5,
        **options,
    ):
        tasks = list(tasks)
        data = {"dataset": "scenes", "tasks": tasks, "num_classes": num_classes}
        if attribute_tasks(tasks) == tasks:
            data = {"dataset": "celeba", "root": "unused", "celeba": {"attributes": tasks}}
        data["resolution"] = [32, 32]
        model = {"kind": kind, **TINY_VISION_MODEL, **options}
        torch.manual_seed(0)
        model, weights_file = build_model(from_dict(VisionConfig, {"data": data, "model": model}))
        assert weights_file is None
        return model

    return build


@pytest.fixture(scope="session")
def tiny_vision_config():
    """Build a vision config from its sections: ``build(data=..., model=..., ...)`` with the
    ``model`` section read over :data:`TINY_VISION_MODEL`."""
    from experiments.vision.config import VisionConfig, from_dict

    def build(**sections):
        model = {**TINY_VISION_MODEL, **sections.pop("model", {})}
        return from_dict(VisionConfig, {**sections, "model": model})

    return build

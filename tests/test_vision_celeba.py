"""CelebA through the vision pipeline: the official files, attribute heads, losses, accuracy,
config and a few training steps, on tiny trees written here in the official format."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vision_files import PARTITIONS, write_celeba

from experiments.vision.attributes import CELEBA_ATTRIBUTES, MEAN_ACCURACY, accuracy_key
from experiments.vision.config import (
    CelebAConfig,
    DataConfig,
    VisionConfig,
    from_dict,
    load_config,
)
from experiments.vision.datasets.builders import build_splits
from experiments.vision.datasets.celeba import (
    ATTRIBUTE_FILE,
    IMAGE_FOLDER,
    PARTITION_FILE,
    TEST,
    TRAIN,
    VALIDATION,
    CelebADataset,
    centred_box,
    read_celeba_index,
)
from experiments.vision.losses import task_losses
from experiments.vision.metrics import DenseMetrics, delta_m
from experiments.vision.model.attribute_heads import (
    AttributeDualStreamModel,
    AttributeLogitHead,
    AttributeSharedBottom,
    FusedAttributeHead,
)
from scm.validation import InvalidParameterError

CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"
SUBSET = ["Smiling", "5_o_Clock_Shadow", "Young"]


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("celeba")
    return root, write_celeba(root)


def celeba_data(root: Path, **celeba) -> DataConfig:
    return DataConfig(
        dataset="celeba",
        root=str(root),
        resolution=[16, 16],
        augment=False,
        celeba=CelebAConfig(**celeba),
    )


def _edit_line(path: Path, number: int, change: Callable[[str], str | None]) -> None:
    lines = path.read_text().splitlines()
    new = change(lines[number - 1])
    lines[number - 1 : number] = [] if new is None else [new]
    path.write_text("\n".join(lines) + "\n")


# --- the official files ---------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_index_reads_names_labels_and_partitions_as_written(tmp_path, newline):
    labels = write_celeba(tmp_path, newline=newline)
    index = read_celeba_index(tmp_path)
    assert index.names == CELEBA_ATTRIBUTES
    assert index.files == tuple(f"{i + 1:06d}.jpg" for i in range(len(PARTITIONS)))
    assert np.array_equal(index.labels, labels)
    assert index.partitions.tolist() == PARTITIONS


def test_samples_hold_the_chosen_attributes_in_the_chosen_order(celeba_root):
    root, labels = celeba_root
    index = read_celeba_index(root)
    test = CelebADataset(index, TEST, SUBSET, resolution=[16, 24])
    rows = [i for i, p in enumerate(PARTITIONS) if p == TEST]
    columns = [CELEBA_ATTRIBUTES.index(name) for name in SUBSET]
    assert len(test) == len(rows)
    for position, row in enumerate(rows):
        sample = test[position]
        assert sample["image"].shape == (3, 16, 24) and sample["image"].dtype == torch.float32
        assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
        expected = [(labels[row, c] + 1) / 2 for c in columns]
        assert sample["attributes"].tolist() == expected
        assert [float(sample[name]) for name in SUBSET] == expected


def test_faces_are_cropped_to_the_target_aspect_not_stretched(tmp_path):
    assert centred_box(178, 218, 1.0) == (0.0, 20.0, 178.0, 198.0)
    assert centred_box(40, 10, 0.5) == (10.0, 0.0, 30.0, 10.0)
    write_celeba(tmp_path, partitions=[TRAIN, TEST])
    face = np.zeros((48, 16, 3), dtype=np.uint8)
    face[:16, :, 0] = 255
    face[16:32, :, 1] = 255
    face[32:, :, 2] = 255
    Image.fromarray(face).save(tmp_path / IMAGE_FOLDER / "000001.jpg", "JPEG", quality=100)
    dataset = CelebADataset(read_celeba_index(tmp_path), TRAIN, SUBSET, resolution=[8, 8])
    image = dataset[0]["image"]
    green = image[1].mean()
    assert green > 0.8 and image[0].mean() < 0.2 and image[2].mean() < 0.2, image.mean((1, 2))


def test_flip_augmentation_mirrors_the_face_and_keeps_labels(celeba_root):
    root, _ = celeba_root
    index = read_celeba_index(root)
    plain = CelebADataset(index, TRAIN, SUBSET, resolution=[16, 16])
    augmented = CelebADataset(index, TRAIN, SUBSET, resolution=[16, 16], augment=True)
    flipped_in = {0: [], 1: []}
    for epoch in (0, 1):
        augmented.set_epoch(epoch)
        for i in range(len(plain)):
            sample, reference = augmented[i], plain[i]
            assert torch.equal(sample["attributes"], reference["attributes"])
            assert torch.equal(sample["image"], augmented[i]["image"])
            if torch.equal(sample["image"], reference["image"].flip(-1)):
                flipped_in[epoch].append(i)
            else:
                assert torch.equal(sample["image"], reference["image"])
    assert flipped_in[0] != flipped_in[1]


@pytest.mark.parametrize("validation", ["official", "carved"])
def test_splits_follow_the_official_partitions(celeba_root, validation):
    root, _ = celeba_root
    config = celeba_data(root, validation=validation, attributes=SUBSET)
    config.val_fraction = 0.25
    splits = build_splits(config, seed=0)
    files = {p: {f"{i + 1:06d}.jpg" for i, q in enumerate(PARTITIONS) if q == p} for p in (0, 1, 2)}
    train, val = set(splits.train.files), set(splits.val.files)
    assert set(splits.test.files) == files[TEST]
    if validation == "official":
        assert train == files[TRAIN] and val == files[VALIDATION]
    else:
        assert not train & val and train | val == files[TRAIN]
        assert len(val) == round(0.25 * len(files[TRAIN]))
    assert splits.train.attributes == SUBSET


def _replace_line(file: str, number: int, text: str | None):
    return lambda root: _edit_line(root / file, number, lambda _: text)


def _remove(path: str):
    def remove(root: Path) -> None:
        target = root / path
        if target.is_dir():
            for child in target.iterdir():
                child.unlink()
            target.rmdir()
        else:
            target.unlink()

    return remove


def _drop_last_value(line: str) -> str:
    return line.rsplit(" ", 1)[0]


BAD_TREES = {
    "missing image folder": (_remove(IMAGE_FOLDER), FileNotFoundError, IMAGE_FOLDER),
    "missing attribute list": (_remove(ATTRIBUTE_FILE), FileNotFoundError, ATTRIBUTE_FILE),
    "missing partition list": (_remove(PARTITION_FILE), FileNotFoundError, PARTITION_FILE),
    "missing image": (
        _remove(f"{IMAGE_FOLDER}/000005.jpg"),
        FileNotFoundError,
        "img_align_celeba/000005.jpg",
    ),
    "count not a number": (
        _replace_line(ATTRIBUTE_FILE, 1, "many"),
        InvalidParameterError,
        "list_attr_celeba.txt, line 1",
    ),
    "count mismatch": (
        _replace_line(ATTRIBUTE_FILE, 1, str(len(PARTITIONS) + 1)),
        InvalidParameterError,
        f"announces {len(PARTITIONS) + 1} images, the file lists {len(PARTITIONS)}",
    ),
    "repeated attribute name": (
        lambda root: _edit_line(root / ATTRIBUTE_FILE, 2, lambda s: s.replace("Male", "Young")),
        InvalidParameterError,
        r"line 2: repeated attribute names \['Young'\]",
    ),
    "value missing": (
        lambda root: _edit_line(root / ATTRIBUTE_FILE, 5, _drop_last_value),
        InvalidParameterError,
        "list_attr_celeba.txt, line 5",
    ),
    "value zero": (
        lambda root: _edit_line(root / ATTRIBUTE_FILE, 6, lambda s: s[:-2] + " 0"),
        InvalidParameterError,
        "list_attr_celeba.txt, line 6",
    ),
    "blank line inside": (
        _replace_line(ATTRIBUTE_FILE, 7, ""),
        InvalidParameterError,
        "list_attr_celeba.txt, line 7",
    ),
    "repeated file": (
        lambda root: _edit_line(
            root / ATTRIBUTE_FILE, 4, lambda s: s.replace("000002.jpg", "000001.jpg")
        ),
        InvalidParameterError,
        "list_attr_celeba.txt, line 4: '000001.jpg' is listed a second time",
    ),
    "partition out of range": (
        _replace_line(PARTITION_FILE, 2, "000002.jpg 3"),
        InvalidParameterError,
        "list_eval_partition.txt, line 2",
    ),
    "partition repeated": (
        _replace_line(PARTITION_FILE, 3, "000002.jpg 0"),
        InvalidParameterError,
        "list_eval_partition.txt, line 3: '000002.jpg' is listed a second time",
    ),
    "partition lacks a file": (
        _replace_line(PARTITION_FILE, 4, None),
        InvalidParameterError,
        "missing from .*list_eval_partition.txt, first '000004.jpg'",
    ),
    "partition has an extra file": (
        lambda root: (root / PARTITION_FILE).write_text(
            (root / PARTITION_FILE).read_text() + "999999.jpg 0\n"
        ),
        InvalidParameterError,
        "'999999.jpg' has no attributes",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TREES))
def test_every_bad_tree_is_an_error_naming_the_file(tmp_path, case):
    corrupt, error, message = BAD_TREES[case]
    write_celeba(tmp_path)
    corrupt(tmp_path)
    with pytest.raises(error, match=message):
        read_celeba_index(tmp_path)


def test_missing_root_and_unknown_attribute_and_corrupt_jpeg_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root: no such folder"):
        read_celeba_index(tmp_path / "absent")
    write_celeba(tmp_path)
    _edit_line(tmp_path / ATTRIBUTE_FILE, 2, lambda s: s.replace("Smiling", "Grinning"))
    index = read_celeba_index(tmp_path)
    with pytest.raises(InvalidParameterError, match=r"\['Smiling'\] not among .*list_attr"):
        CelebADataset(index, TRAIN, SUBSET, resolution=[16, 16])
    (tmp_path / IMAGE_FOLDER / "000001.jpg").write_bytes(b"not a jpeg")
    dataset = CelebADataset(index, TRAIN, ["Male"], resolution=[16, 16])
    with pytest.raises(InvalidParameterError, match=r"000001\.jpg is not a readable JPEG"):
        dataset[0]


def test_an_empty_partition_is_an_error(tmp_path):
    write_celeba(tmp_path, partitions=[TRAIN, TRAIN, TEST])
    with pytest.raises(InvalidParameterError, match="no image in partition 1"):
        CelebADataset(read_celeba_index(tmp_path), VALIDATION, SUBSET, resolution=[16, 16])


# --- config -------------------------------------------------------------------------------


def test_config_derives_tasks_from_attributes_and_defaults_to_soft_grounding(celeba_root):
    root, _ = celeba_root
    everything = from_dict(VisionConfig, {"data": {"dataset": "celeba", "root": str(root)}})
    assert everything.data.tasks == list(CELEBA_ATTRIBUTES)
    assert everything.model.grounding == "soft"
    first = from_dict(
        VisionConfig,
        {"data": {"dataset": "celeba", "root": str(root), "celeba": {"attributes": 4}}},
    )
    assert first.data.tasks == list(CELEBA_ATTRIBUTES[:4])
    again = from_dict(VisionConfig, first.to_dict())
    assert again.data.tasks == first.data.tasks and again.model.grounding == "soft"
    dense = from_dict(VisionConfig, {"data": {"dataset": "scenes"}})
    assert dense.data.tasks == ["segmentation", "depth", "normal"]
    assert dense.model.grounding == "hard"


@pytest.mark.parametrize(
    ("data", "model", "key"),
    [
        ({"celeba": {"attributes": ["Smiling", "Happy"]}}, {}, "data.celeba.attributes"),
        ({"celeba": {"attributes": 41}}, {}, "data.celeba.attributes"),
        ({"celeba": {"attributes": 0}}, {}, "data.celeba.attributes"),
        ({"celeba": {"attributes": ["Male", "Male"]}}, {}, "data.celeba.attributes"),
        ({"celeba": {"attributes": True}}, {}, "data.celeba.attributes"),
        ({"celeba": {"validation": "test"}}, {}, "data.celeba.validation"),
        ({"tasks": ["segmentation"]}, {}, "data.tasks"),
        ({}, {"grounding": "hard"}, "model.grounding"),
    ],
)
def test_bad_celeba_configs_name_the_key(tmp_path, data, model, key):
    raw = {"data": {"dataset": "celeba", "root": str(tmp_path), **data}, "model": model}
    with pytest.raises(InvalidParameterError, match=key.replace(".", r"\.")):
        from_dict(VisionConfig, raw)


@pytest.mark.parametrize("name", ["celeba.yaml", "celeba_cpu_small.yaml"])
def test_shipped_celeba_configs_validate(name):
    config = load_config(CONFIG_FOLDER / name)
    assert config.data.dataset == "celeba" and config.model.grounding == "soft"
    assert config.data.tasks == config.data.celeba.attributes
    assert config.data.resolution[0] == config.data.resolution[1]


# --- heads ------------------------------------------------------------------------------


def test_fused_head_equals_one_linear_head_per_attribute_with_the_same_weights():
    torch.manual_seed(0)
    fused = FusedAttributeHead(SUBSET, in_channels=6)
    z = torch.randn(5, 6, 3, 4)
    predictions = fused(z)
    assert list(predictions) == SUBSET
    storages = {p.untyped_storage().data_ptr() for p in predictions.values()}
    assert len(storages) == 1, "the attribute predictions should be views of one fused output"
    for k, name in enumerate(SUBSET):
        single = AttributeLogitHead(in_channels=6)
        with torch.no_grad():
            single.linear.weight.copy_(fused.linear.weight[k : k + 1])
            single.linear.bias.copy_(fused.linear.bias[k : k + 1])
        torch.testing.assert_close(predictions[name], single(z))
        assert predictions[name].shape == (5,)


@pytest.mark.parametrize(
    ("kind", "model_type"),
    [("core-mtl", AttributeDualStreamModel), ("ew", AttributeSharedBottom), ("mtan", None)],
)
def test_models_predict_one_logit_per_attribute(kind, model_type, tiny_vision_model):
    model = tiny_vision_model(kind, SUBSET, 2, semantic_channels=8, residual_channels=4)
    if model_type is not None:
        assert isinstance(model, model_type)
    assert model.task_names == SUBSET
    with torch.no_grad():
        forward = model.eval()(torch.rand(2, 3, 16, 16))
    assert {name: tuple(p.shape) for name, p in forward.predictions.items()} == {
        name: (2,) for name in SUBSET
    }
    if kind == "core-mtl":
        assert model.decoder is not None and model.decode(forward.z_s, forward.z_r).shape == (
            2,
            3,
            16,
            16,
        )


def test_perturbing_the_residual_stream_leaves_attribute_predictions_unchanged(
    tiny_vision_model,
):
    model = tiny_vision_model("core-mtl", SUBSET, 2, semantic_channels=8, residual_channels=4)
    model.eval()
    x = torch.rand(3, 3, 16, 16)
    split = model.split

    class Perturbed(torch.nn.Module):
        def __init__(self, stream: int) -> None:
            super().__init__()
            self.stream = stream

        def forward(self, features):
            streams = list(split(features))
            streams[self.stream] = streams[self.stream] + 10.0 * torch.randn_like(
                streams[self.stream]
            )
            return tuple(streams)

    with torch.no_grad():
        reference = model(x).predictions
        model.split = Perturbed(stream=1)
        residual = model(x).predictions
        model.split = Perturbed(stream=0)
        semantic = model(x).predictions
    for name in SUBSET:
        assert torch.equal(residual[name], reference[name])
    assert any(not torch.allclose(semantic[name], reference[name]) for name in SUBSET)


# --- losses and accuracy ------------------------------------------------------------------------


def _hand_made(seed: int, size: int = 6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(size, len(SUBSET)))
    labels = rng.integers(0, 2, size=(size, len(SUBSET))).astype(float)
    predictions = {name: torch.from_numpy(logits[:, k]) for k, name in enumerate(SUBSET)}
    batch = {name: torch.from_numpy(labels[:, k]) for k, name in enumerate(SUBSET)}
    batch["attributes"] = torch.from_numpy(labels)
    return predictions, batch, logits, labels


def test_attribute_losses_are_binary_cross_entropy_per_attribute():
    predictions, batch, logits, labels = _hand_made(0)
    losses = task_losses(predictions, batch, SUBSET)
    assert list(losses) == SUBSET
    for k, name in enumerate(SUBSET):
        expected = np.mean(
            [
                -math.log(1 / (1 + math.exp(-z)))
                if y == 1
                else -math.log(1 - 1 / (1 + math.exp(-z)))
                for z, y in zip(logits[:, k], labels[:, k], strict=True)
            ]
        )
        assert float(losses[name]) == pytest.approx(expected, rel=1e-5)
    alone = task_losses({SUBSET[1]: predictions[SUBSET[1]]}, batch, [SUBSET[1]])
    assert torch.equal(alone[SUBSET[1]], losses[SUBSET[1]])
    del batch[SUBSET[2]]
    with pytest.raises(InvalidParameterError, match=r"batch\['Young'\]: expected labels"):
        task_losses(predictions, batch, SUBSET)


def test_accuracy_is_counted_over_the_whole_split():
    pairs = [_hand_made(seed, size) for seed, size in ((1, 5), (2, 7))]
    metrics = DenseMetrics(SUBSET, num_classes=2)
    for predictions, batch, _, _ in pairs:
        metrics.update(predictions, batch)
    out = metrics.compute()
    logits = np.concatenate([p[2] for p in pairs])
    labels = np.concatenate([p[3] for p in pairs])
    accuracies = []
    for k, name in enumerate(SUBSET):
        correct = sum(
            int((z > 0) == (y == 1)) for z, y in zip(logits[:, k], labels[:, k], strict=True)
        )
        accuracies.append(correct / len(labels))
        assert out[accuracy_key(name)] == pytest.approx(accuracies[-1], rel=1e-12)
    assert out[MEAN_ACCURACY] == pytest.approx(sum(accuracies) / len(accuracies), rel=1e-12)
    reference = {accuracy_key(name): 0.5 for name in SUBSET} | {MEAN_ACCURACY: 0.5}
    expected = -sum((a - 0.5) / 0.5 * 100 for a in accuracies) / len(accuracies)
    assert delta_m(out, reference) == pytest.approx(expected, rel=1e-12)


# --- training -----------------------------------------------------------------------------


def test_a_few_coremtl_steps_on_tiny_celeba_lower_the_attribute_losses(
    celeba_root, tmp_path, tiny_vision_config
):
    from experiments.vision.training import build_run, evaluate, first_batch, training_step

    root, _ = celeba_root
    config = tiny_vision_config(
        data={
            "dataset": "celeba",
            "root": str(root),
            "resolution": [16, 16],
            "celeba": {"attributes": list(CELEBA_ATTRIBUTES[:3])},
        },
        method={"cka_warmup_steps": 0, "cfa_probability": 1.0},
        training={
            "epochs": 1,
            "batch_size": 4,
            "warmup_steps": 0,
            "lr": 2e-3,
            "max_steps_per_epoch": 1,
        },
        run={"output_dir": str(tmp_path), "seed": 0},
    )
    run = build_run(config)
    batch = first_batch(run)
    assert run.trainer.task_loss_vector is not None
    forward = run.model(batch["image"])
    from_vector = run.trainer.task_losses_fn(forward.predictions, batch)
    one_by_one = task_losses(forward.predictions, batch, list(CELEBA_ATTRIBUTES[:3]))
    assert list(from_vector) == list(one_by_one)
    assert all(torch.allclose(from_vector[t], one_by_one[t]) for t in one_by_one)
    records = [training_step(run, batch) for _ in range(4)]
    totals = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in records]
    assert totals[-1] < totals[0]
    assert {"term/cka", "term/cfa", "term/reconstruction"} <= set(records[0])
    metrics = evaluate(run.model, run.splits.test, config, run.device)
    assert set(metrics) == {accuracy_key(n) for n in CELEBA_ATTRIBUTES[:3]} | {MEAN_ACCURACY}

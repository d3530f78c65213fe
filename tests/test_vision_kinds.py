"""Vision model kinds: single-task, Rep-MTL, MT-CRL, the skip-connection ablation, references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from coremtl.architectures.mtcrl import MTCRL
from coremtl.architectures.repmtl import RepMTLRegularizer
from coremtl.architectures.single_task import SingleTaskModels
from coremtl.balancers.registry import BALANCER_NAMES
from coremtl.names import METHODS
from coremtl.objective import CoreMTLObjective
from coremtl.representation import DualStreamModel
from coremtl_cli.main import main
from experiments.vision.config import OBJECTIVE_FIELDS, VisionConfig, from_dict
from experiments.vision.datasets.synthetic import write_tiny_dataset
from experiments.vision.losses import task_losses
from experiments.vision.metrics import delta_m
from experiments.vision.model.build import build_model
from experiments.vision.model.skip import SkipConnectionDualStreamModel
from experiments.vision.regularizers import EnvironmentOptionalMTCRL, build_regularizers
from experiments.vision.single_task import (
    read_reference_file,
    single_task_config,
    single_task_reference,
)
from scm.validation import InvalidParameterError

TASKS = ["segmentation", "depth", "normal"]
CLASSES = 5
SIZE = 32
CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"


@pytest.fixture(scope="module")
def vision_config(tiny_vision_config):
    """``vision_config(kind, **method)``: the tiny model of ``kind`` on the scenes' tasks."""

    def build(kind: str, **method) -> VisionConfig:
        return tiny_vision_config(
            data={"dataset": "scenes", "tasks": TASKS, "num_classes": CLASSES},
            model={"kind": kind, "mtcrl_modules": 3, "mtcrl_module_channels": 8},
            method=method,
        )

    return build


def labelled_batch(batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, SIZE, SIZE)
    normal = torch.nn.functional.normalize(torch.randn(batch_size, 3, SIZE, SIZE), dim=1)
    return {
        "image": torch.rand(batch_size, 3, SIZE, SIZE, generator=generator),
        "segmentation": torch.randint(-1, CLASSES, shape, generator=generator),
        "depth": torch.rand(batch_size, 1, SIZE, SIZE, generator=generator) * 5.0,
        "normal": normal,
    }


def losses_fn(predictions, batch):
    return task_losses(predictions, batch, TASKS)


@pytest.mark.parametrize(
    ("kind", "options", "model_type"),
    [
        ("core-mtl", {}, DualStreamModel),
        ("core-mtl", {"skip_connection": True}, SkipConnectionDualStreamModel),
        ("ew", {}, None),
        ("mtan", {}, None),
        ("rep-mtl", {}, None),
        ("mt-crl", {"mtcrl_modules": 3, "mtcrl_module_channels": 8}, MTCRL),
    ],
)
def test_every_kind_predicts_full_resolution_maps(kind, options, model_type, tiny_vision_model):
    model = tiny_vision_model(kind, **options).eval()
    if model_type is not None:
        assert isinstance(model, model_type)
    with torch.no_grad():
        forward = model(torch.rand(2, 3, SIZE, SIZE))
    assert forward.predictions["segmentation"].shape == (2, CLASSES, SIZE, SIZE)
    assert forward.predictions["depth"].shape == (2, 1, SIZE, SIZE)
    assert forward.predictions["normal"].shape == (2, 3, SIZE, SIZE)
    assert forward.shared.shape[0] == 2


def test_single_kind_is_the_encoder_and_the_head_of_its_one_task(tiny_vision_model):
    model = tiny_vision_model("single-task", tasks=["depth"]).eval()
    assert isinstance(model, SingleTaskModels) and model.task_names == ["depth"]
    with torch.no_grad():
        forward = model(torch.rand(2, 3, SIZE, SIZE))
    assert set(forward.predictions) == {"depth"}
    assert forward.predictions["depth"].shape == (2, 1, SIZE, SIZE)
    assert forward.shared.shape == (2, 512, SIZE // 8, SIZE // 8)


def test_single_kind_with_several_tasks_is_an_error_naming_data_tasks(tiny_vision_model):
    with pytest.raises(InvalidParameterError, match=r"data\.tasks: model\.kind 'single-task'"):
        tiny_vision_model("single-task", ["segmentation", "depth"])


def test_mtcrl_on_maps_gates_spatial_modules_per_task(tiny_vision_model):
    model = tiny_vision_model("mt-crl", mtcrl_modules=3, mtcrl_module_channels=8).train()
    forward = model(torch.rand(4, 3, SIZE, SIZE))
    assert forward.shared.shape == (4, 3 * 8, SIZE // 8, SIZE // 8)
    assert forward.extras["routing"].shape == (len(TASKS), 3)
    assert forward.extras["modules"].shape == (4, 3 * 8)
    assert model.heads["depth"].head[0].convs[0][0].in_channels == 3 * 8
    shared_ids = {id(p) for p in model.shared_parameters()}
    assert id(model.routing_logits) not in shared_ids
    assert all(id(p) in shared_ids for p in model.disentangled.parameters())


def assert_term_reaches(term: torch.Tensor, parameter: torch.nn.Parameter) -> None:
    assert torch.isfinite(term) and term.requires_grad
    (gradient,) = torch.autograd.grad(term, parameter, retain_graph=True)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_repmtl_terms_are_finite_and_reach_the_encoder(vision_config):
    config = vision_config("rep-mtl", repmtl={"tsr_weight": 1.0, "csa_weight": 0.5})
    (regularizer,) = build_regularizers(config)
    assert isinstance(regularizer, RepMTLRegularizer) and regularizer.csa_weight == 0.5
    model, _ = build_model(config)
    batch = labelled_batch()
    forward = model.train()(batch["image"])
    terms = regularizer.terms(model, batch, forward, 0, losses_fn)
    assert set(terms) == {"repmtl_tsr", "repmtl_csa"}
    for term in terms.values():
        assert_term_reaches(term, model.trunk.layer4[1].conv2.weight)


def test_mtcrl_terms_are_finite_and_reach_modules_and_routing(vision_config):
    config = vision_config("mt-crl", mtcrl={"sparsity_weight": 0.1})
    (regularizer,) = build_regularizers(config)
    model, _ = build_model(config)
    batch = {**labelled_batch(), "environment": torch.tensor([0, 0, 1, 1])}
    forward = model.train()(batch["image"])
    terms = regularizer.terms(model, batch, forward, 0, losses_fn)
    assert set(terms) == {"mtcrl_decorrelation", "mtcrl_invariance", "mtcrl_sparsity"}
    assert_term_reaches(terms["mtcrl_decorrelation"], model.disentangled[0][0].weight)
    assert_term_reaches(terms["mtcrl_invariance"], model.routing_logits)
    assert_term_reaches(terms["mtcrl_sparsity"], model.routing_logits)


def test_mtcrl_without_environments_skips_invariance_with_one_notice(capsys, vision_config):
    config = vision_config("mt-crl")
    (regularizer,) = build_regularizers(config)
    assert isinstance(regularizer, EnvironmentOptionalMTCRL)
    model, _ = build_model(config)
    batch = labelled_batch()
    forward = model.train()(batch["image"])
    for step in range(2):
        terms = regularizer.terms(model, batch, forward, step, losses_fn)
        assert set(terms) == {"mtcrl_decorrelation", "mtcrl_sparsity"}
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "'environment'" in notice[0] and "invariance" in notice[0]


@pytest.mark.parametrize("kind", ["core-mtl", "ew", "mtan", "single-task"])
def test_other_kinds_add_no_regularizer(kind, vision_config):
    assert build_regularizers(vision_config(kind)) == []


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("model", {"kind": "ew", "skip_connection": True}, r"model\.skip_connection"),
        ("model", {"kind": "stl"}, r"model\.kind"),
        ("model", {"mtcrl_modules": 1}, r"model\.mtcrl_modules"),
        ("model", {"mtcrl_module_channels": 0}, r"model\.mtcrl_module_channels"),
        ("model", {"skip_connection": "yes"}, r"model\.skip_connection"),
        ("method", {"repmtl": {"temperature": 0.0}}, r"method\.repmtl\.temperature"),
        ("method", {"repmtl": {"tsr_weight": -1.0}}, r"method\.repmtl\.tsr_weight"),
        ("method", {"mtcrl": {"invariance_weight": -0.5}}, r"method\.mtcrl\.invariance_weight"),
        ("method", {"mtcrl": {"environment_key": "env"}}, r"method\.mtcrl\.environment_key"),
        ("run", {"single_task_reference_file": 3}, r"run\.single_task_reference_file"),
    ],
)
def test_config_errors_name_the_key(section, values, key):
    with pytest.raises(InvalidParameterError, match=key):
        from_dict(VisionConfig, {"data": {"dataset": "scenes"}, section: values})


def residual_only_direction(model) -> torch.Tensor:
    """A unit direction ``d`` of encoder-feature space with ``W_s d = 0`` and ``W_r d != 0``."""
    weight = model.split.projection.weight.detach().flatten(1).double()
    semantic = weight[: model.split.semantic_dim]
    generator = torch.Generator().manual_seed(5)
    v = torch.randn(weight.shape[1], dtype=torch.float64, generator=generator)
    d = v - semantic.T @ torch.linalg.solve(semantic @ semantic.T, semantic @ v)
    return (d / d.norm()).float()


def perturbed_forward(model, x: torch.Tensor, direction: torch.Tensor, scale: float):
    """``model(x)`` with ``scale * direction`` added to the encoder features at every pixel."""
    hook = model.encoder.register_forward_hook(
        lambda module, inputs, output: output + scale * direction.view(1, -1, 1, 1)
    )
    try:
        with torch.no_grad():
            return model(x)
    finally:
        hook.remove()


@pytest.mark.parametrize("skip", [False, True])
def test_features_outside_z_s_reach_predictions_only_through_the_skip_connection(
    skip, tiny_vision_model
):
    model = tiny_vision_model("core-mtl", skip_connection=skip).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    direction = residual_only_direction(model)
    with torch.no_grad():
        scale = float(model.encoder(x).norm(dim=1).mean())
    base = perturbed_forward(model, x, direction, 0.0)
    moved = perturbed_forward(model, x, direction, scale)
    assert (moved.z_r - base.z_r).abs().max() > 1e-2 * base.z_r.abs().max()
    """the perturbation really moves the residual stream"""
    z_s_change = (moved.z_s - base.z_s).abs().max()
    assert z_s_change < 1e-5 * scale
    """and leaves Z_s unchanged up to float32 rounding of W_s d"""
    changes = {t: float((moved.predictions[t] - base.predictions[t]).abs().max()) for t in TASKS}
    if skip:
        assert all(change > 1e-3 for change in changes.values()), changes
    else:
        assert all(change < 1e-3 for change in changes.values()), changes


def test_skip_connection_heads_read_z_s_and_pre_split_features(tiny_vision_model):
    model = tiny_vision_model("core-mtl", skip_connection=True)
    assert model.heads["segmentation"].head[0].convs[0][0].in_channels == 16 + 512
    assert model.decoder.normal_head is not model.heads["normal"]
    assert model.decoder.normal_head.head[0].convs[0][0].in_channels == 16
    with pytest.raises(InvalidParameterError, match="features"):
        model.predict(torch.zeros(1, 16, 4, 4))
    plain = tiny_vision_model("core-mtl")
    assert plain.decoder.normal_head is plain.heads["normal"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_dataset(
        tmp_path_factory.mktemp("tiny"), num_train=10, num_test=4, height=16, width=32
    )


@pytest.fixture
def write_config(tiny_vision_section):
    """``write_config(path, root, output)``: a YAML config of hard sharing on tiny NYUv2 files."""

    def write(path: Path, root: Path, output: Path) -> Path:
        data = {
            "data": {
                "dataset": "nyuv2",
                "root": str(root),
                "tasks": ["segmentation", "depth"],
                "resolution": [16, 32],
                "val_fraction": 0.2,
            },
            "model": {"kind": "ew", **tiny_vision_section},
            "training": {
                "epochs": 1,
                "batch_size": 4,
                "warmup_steps": 0,
                "lr": 5e-3,
                "max_steps_per_epoch": 2,
                "selection_metric": "segmentation/miou",
            },
            "run": {"output_dir": str(output), "seed": 1, "num_sample_images": 1},
        }
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def test_single_task_config_keeps_the_backbone_and_its_own_selection_metric(
    data_root, tmp_path, write_config
):
    from experiments.vision.config import load_config

    config = load_config(write_config(tmp_path / "c.yaml", data_root, tmp_path / "out"))
    segmentation = single_task_config(config, "segmentation")
    depth = single_task_config(config, "depth")
    assert segmentation.data.tasks == ["segmentation"] and segmentation.model.kind == "single-task"
    assert segmentation.model.arch == config.model.arch == depth.model.arch
    assert segmentation.training.selection_metric == "segmentation/miou"
    assert depth.training.selection_metric == "delta_m"
    assert Path(depth.run.output_dir) == tmp_path / "out" / "single_task" / "depth"
    with pytest.raises(InvalidParameterError, match=r"data\.tasks"):
        single_task_config(config, "normal")


def test_single_task_references_are_written_and_read_by_a_multi_task_run(
    data_root, tmp_path, capsys, write_config
):
    output = tmp_path / "out"
    config_path = write_config(tmp_path / "c.yaml", data_root, output)
    assert main(["train", "--config", str(config_path), "--single-task-references"]) == 0
    reference_path = output / "single_task_reference.json"
    reference = read_reference_file(reference_path)
    expected = {}
    for task in ("segmentation", "depth"):
        report = json.loads((output / "single_task" / task / "final_metrics.json").read_text())
        assert all(key.startswith(f"{task}/") for key in report["test_at_selected"])
        expected.update(report["test_at_selected"])
    assert reference == pytest.approx(expected, rel=0, abs=0)
    multi = tmp_path / "multi"
    code = main(
        [
            "train",
            "--config",
            str(config_path),
            "--output",
            str(multi),
            "--set",
            f"run.single_task_reference_file={reference_path}",
        ]
    )
    assert code == 0
    report = json.loads((multi / "final_metrics.json").read_text())
    assert report["delta_m_percent"] == pytest.approx(
        delta_m(report["test_at_selected"], reference)
    )
    recorded = report["single_task_reference"]
    assert {name: entry["value"] for name, entry in recorded.items()} == reference
    assert {entry["source"] for entry in recorded.values()} == {f"file: {reference_path}"}
    assert f"from file: {reference_path}" in capsys.readouterr().out


def test_the_reference_file_wins_over_inline_values_and_a_missing_file_is_named(tmp_path):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"segmentation/miou": 0.5, "depth/abs_err": 0.4}))
    config = from_dict(
        VisionConfig,
        {
            "data": {"dataset": "scenes"},
            "run": {
                "single_task_reference_file": str(path),
                "single_task_reference": {"depth/abs_err": 0.3},
            },
        },
    )
    assert single_task_reference(config) == {"segmentation/miou": 0.5, "depth/abs_err": 0.4}
    config.run.single_task_reference_file = str(tmp_path / "absent.json")
    with pytest.raises(FileNotFoundError, match=r"run\.single_task_reference_file: .*absent\.json"):
        single_task_reference(config)
    path.write_text(json.dumps({"segmentation/miou": "high"}))
    config.run.single_task_reference_file = str(path)
    with pytest.raises(InvalidParameterError, match=r"'segmentation/miou' should be a finite"):
        single_task_reference(config)


def test_single_task_config_of_celeba_keeps_one_attribute():
    config = from_dict(
        VisionConfig, {"data": {"dataset": "celeba", "root": "celeba", "celeba": {"attributes": 3}}}
    )
    attribute = config.data.tasks[1]
    single = single_task_config(config, attribute)
    assert single.data.tasks == [attribute] and single.data.celeba.attributes == [attribute]


def _reference_config(tmp_path, **run) -> VisionConfig:
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"segmentation/miou": 0.5, "depth/abs_err": 0.4}))
    inline = {"depth/abs_err": 0.3, "normal/mean": 24.27}
    settings = {
        "single_task_reference_file": str(path),
        "single_task_reference": inline,
        "single_task_reference_label": "inline: paper ResNet-50",
        **run,
    }
    return from_dict(VisionConfig, {"data": {"dataset": "scenes"}, "run": settings})


def test_inline_values_are_ignored_with_a_file_and_said_to_be(tmp_path):
    from experiments.vision.single_task import resolve_reference

    reference = resolve_reference(_reference_config(tmp_path))
    assert reference.values == {"segmentation/miou": 0.5, "depth/abs_err": 0.4}
    assert set(reference.sources.values()) == {f"file: {tmp_path / 'reference.json'}"}
    assert reference.ignored_inline == ("depth/abs_err", "normal/mean")
    assert "inline depth/abs_err, normal/mean ignored (the file wins" in reference.describe()


def test_mixing_inline_values_fills_only_the_metrics_the_file_lacks(tmp_path):
    from experiments.vision.single_task import resolve_reference

    reference = resolve_reference(_reference_config(tmp_path, single_task_reference_mix=True))
    assert reference.values == {
        "segmentation/miou": 0.5,
        "depth/abs_err": 0.4,
        "normal/mean": 24.27,
    }
    assert reference.sources["normal/mean"] == "inline: paper ResNet-50"
    assert reference.sources["depth/abs_err"].startswith("file: ")
    assert reference.record()["normal/mean"] == {
        "value": 24.27,
        "source": "inline: paper ResNet-50",
    }
    only_inline = resolve_reference(_reference_config(tmp_path, single_task_reference_file=None))
    assert set(only_inline.sources.values()) == {"inline: paper ResNet-50"}


def test_a_zero_reference_is_written_as_measured_and_left_out_of_delta_m_with_a_record(tmp_path):
    """The file keeps what was measured; a run reading it leaves the 0 out of Delta_m (which
    divides by it), says so and records it; an inline 0 is refused by the config."""
    from experiments.vision.single_task import resolve_reference, write_reference_file

    path = tmp_path / "reference.json"
    write_reference_file(path, {"normal/mean": 30.0, "normal/within_11.25": 0.0})
    assert read_reference_file(path) == {"normal/mean": 30.0, "normal/within_11.25": 0.0}
    config = from_dict(
        VisionConfig,
        {"data": {"dataset": "scenes"}, "run": {"single_task_reference_file": str(path)}},
    )
    reference = resolve_reference(config)
    assert reference.values == {"normal/mean": 30.0}
    assert reference.left_out == ("normal/within_11.25",)
    assert "normal/within_11.25 left out (0 in the reference, Delta_m divides" in (
        reference.describe()
    )
    assert reference.record()["normal/within_11.25"] == {
        "value": 0.0,
        "source": f"file: {path}",
        "left_out": "0: Delta_m divides by it",
    }
    with pytest.raises(
        InvalidParameterError, match=r"run\.single_task_reference\.depth/abs_err: expected a finite"
    ):
        from_dict(
            VisionConfig,
            {"data": {"dataset": "scenes"}, "run": {"single_task_reference": {"depth/abs_err": 0}}},
        )


def test_shipped_configs_label_their_inline_paper_numbers():
    from experiments.vision.config import load_config
    from experiments.vision.single_task import resolve_reference

    folder = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"
    for name in ("nyuv2.yaml", "cityscapes.yaml"):
        reference = resolve_reference(load_config(folder / name))
        assert reference.values and set(reference.sources.values()) == {
            "inline: paper ResNet-50 (docs/VISION.md)"
        }


def test_selection_scores_delta_m_as_the_final_report_does():
    from experiments.vision.training import selection_score

    reference = {"segmentation/miou": 0.5, "depth/abs_err": 0.4}
    metrics = {"segmentation/miou": 0.6, "depth/abs_err": 0.5, "normal/within_11.25": 0.0}
    assert selection_score(metrics, "delta_m", reference, []) == delta_m(metrics, reference)
    first = {"segmentation/miou": 0.4, "depth/abs_err": 0.5, "normal/within_11.25": 0.0}
    score = selection_score(metrics, "delta_m", {}, [{"val": first}])
    assert score == pytest.approx(delta_m(metrics, {k: first[k] for k in list(first)[:2]}))


@pytest.mark.parametrize(
    ("model", "training", "kind"),
    [
        ({"kind": "coremtl"}, {}, "core-mtl"),
        ({"kind": "CORE-MTL"}, {}, "core-mtl"),
        ({"kind": "mtcrl"}, {}, "mt-crl"),
        ({"kind": "repmtl"}, {}, "rep-mtl"),
        ({"kind": "single"}, {}, "single-task"),
        ({"kind": "shared"}, {}, "ew"),
        ({"kind": "shared"}, {"balancer": "pcgrad"}, "pcgrad"),
        ({"kind": "pcgrad"}, {}, "pcgrad"),
        ({"kind": "PCGrad"}, {"balancer": "pcgrad"}, "pcgrad"),
    ],
)
def test_model_kind_is_read_as_the_method_name(tiny_vision_config, model, training, kind):
    config = tiny_vision_config(data={"dataset": "scenes"}, model=model, training=training)
    assert config.model.kind == kind
    balancer = kind if kind in BALANCER_NAMES else training.get("balancer", "ew")
    assert config.training.balancer == balancer
    again = from_dict(VisionConfig, config.to_dict())
    assert (again.model.kind, again.training.balancer) == (kind, balancer)


@pytest.mark.parametrize(
    ("model", "training", "message"),
    [
        (
            {"kind": "pcgrad"},
            {"balancer": "mgda"},
            r"training\.balancer: expected 'ew' or 'pcgrad'",
        ),
        ({"kind": "shared"}, {"balancer": "core-mtl"}, r"training\.balancer: expected one of ew"),
        ({"kind": "hard-sharing"}, {}, r"model\.kind: expected one of core-mtl"),
    ],
)
def test_a_kind_and_a_balancer_that_disagree_are_one_line(
    tiny_vision_config, model, training, message
):
    with pytest.raises(InvalidParameterError, match=message) as error:
        tiny_vision_config(data={"dataset": "scenes"}, model=model, training=training)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("path", sorted(CONFIG_FOLDER.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_name_their_method_as_coremtl_methods_does(path):
    assert yaml.safe_load(path.read_text())["model"]["kind"] in METHODS


def test_the_method_section_is_the_library_objective():
    config = from_dict(VisionConfig, {"data": {"dataset": "scenes"}, "method": {"cfa_weight": 0.3}})
    objective = config.method.objective()
    assert isinstance(objective, CoreMTLObjective) and objective.input_key == "image"
    assert {name: getattr(objective, name) for name in OBJECTIVE_FIELDS} == {
        name: getattr(config.method, name) for name in OBJECTIVE_FIELDS
    }
    assert objective.cfa_weight == 0.3 and objective.cka_weight == CoreMTLObjective().cka_weight
    with pytest.raises(InvalidParameterError, match=r"^method\.cka_weight: expected a finite"):
        from_dict(VisionConfig, {"data": {"dataset": "scenes"}, "method": {"cka_weight": -1.0}})


@pytest.mark.parametrize("kind", ["core-mtl", "pcgrad", "mtan", "rep-mtl", "mt-crl"])
def test_every_kind_is_built_by_the_library_dispatcher(kind, tiny_vision_config, monkeypatch):
    import coremtl.preset
    from experiments.vision.model.build import build_preset

    methods = []
    library_build = coremtl.preset.build

    def recorded(method, *args, **options):
        methods.append(method)
        return library_build(method, *args, **options)

    monkeypatch.setattr(coremtl.preset, "build", recorded)
    config = tiny_vision_config(
        data={"dataset": "scenes", "resolution": [16, 16]},
        model={"kind": kind, "mtcrl_modules": 2, "mtcrl_module_channels": 4},
        training={"epochs": 4, "reconstruction_epochs": 1, "independence_start_epoch": 2},
    )
    preset, _ = build_preset(config)
    assert methods == [kind] and preset.method == kind
    starts = [(source.name, source.start_epoch) for source in preset.term_sources]
    if kind == "core-mtl":
        assert preset.task_start_epoch == 1
        assert starts == [("grounding", 0), ("independence", 2)]
    else:
        assert preset.task_start_epoch == 0
        assert starts == ([(kind, 0)] if kind in ("rep-mtl", "mt-crl") else [])

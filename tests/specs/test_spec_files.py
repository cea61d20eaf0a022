"""Spec files load as TAO loads them; broken specs are refused with file:line(:col) messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpu_worker.errors import UserError
from gpu_worker.specs import (
    SpecKind,
    backbone,
    class_mapping,
    detect_spec_kind,
    input_size,
    load_dataset_convert_spec,
    load_experiment_spec,
    spec_to_text,
    target_class_names,
    with_data_paths,
    with_pretrained_model,
)
from gpu_worker.specs.proto.experiment_pb2 import Experiment

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
TAO_SPEC = Path(__file__).parent / "fixtures" / "tao_kitti_resnet18.txt"


def _write(tmp_path: Path, text: str, name: str = "spec.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.txt")), ids=lambda p: p.name)
def test_every_shipped_spec_loads_and_validates(path: Path) -> None:
    kind = detect_spec_kind(path)
    if path.name == "dataset_convert.txt":
        assert kind is SpecKind.DATASET_CONVERT
        spec = load_dataset_convert_spec(path)
        assert spec.kitti_config.image_extension == ".jpg"
        assert spec.kitti_config.num_partitions == 2
        return
    assert kind is SpecKind.EXPERIMENT
    experiment = load_experiment_spec(path)
    assert target_class_names(experiment) == ["person", "bag", "face"]
    assert class_mapping(experiment) == {
        "person": "person",
        "backpack": "bag",
        "handbag": "bag",
        "suitcase": "bag",
        "face": "face",
    }


def test_peoplenet_specs_match_peoplenet() -> None:
    for name in ("peoplenet_train.txt", "peoplenet_retrain.txt"):
        spec = load_experiment_spec(SPECS / name)
        assert input_size(spec) == (960, 544)
        assert (backbone(spec).arch, backbone(spec).num_layers, backbone(spec).all_projections) == ("resnet", 34, True)
        assert spec.model_config.objective_set.bbox.scale == 35.0
        assert spec.model_config.objective_set.bbox.offset == 0.5
    assert load_experiment_spec(SPECS / "peoplenet_retrain.txt").model_config.load_graph
    demo = load_experiment_spec(SPECS / "demo_cpu.txt")
    assert backbone(demo).num_layers == 10
    assert demo.training_config.batch_size_per_gpu == 4


def test_a_tao_documented_spec_loads_unchanged() -> None:
    spec = load_experiment_spec(TAO_SPEC)
    assert target_class_names(spec) == ["car", "cyclist", "pedestrian"]
    assert input_size(spec) == (1248, 384)
    assert class_mapping(spec)["van"] == "car"
    assert spec.dataset_config.validation_fold == 0
    assert spec.training_config.visualizer.num_images == 3
    assert spec.postprocessing_config.target_class_config["pedestrian"].clustering_config.dbscan_eps == pytest.approx(
        0.23
    )
    # Absolute paths stay as written.
    assert spec.dataset_config.data_sources[0].image_directory_path == "/workspace/tao-experiments/data/training"


def test_misspelt_field_reports_line_and_column(tmp_path: Path) -> None:
    text = TAO_SPEC.read_text()
    text = _replace_once(text, "    hflip_probability: 0.5", "    hflip_probabilty: 0.5")
    line = text.splitlines().index("    hflip_probabilty: 0.5") + 1
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_experiment_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:5: ")
    assert "hflip_probabilty" in message


def test_missing_config_message_is_named(tmp_path: Path) -> None:
    text = TAO_SPEC.read_text()
    start = text.index("bbox_rasterizer_config {")
    path = _write(tmp_path, text[:start])
    with pytest.raises(UserError, match=r"missing config message\(s\) bbox_rasterizer_config"):
        load_experiment_spec(path)


def test_width_not_multiple_of_16_is_refused_with_its_line(tmp_path: Path) -> None:
    text = _replace_once(TAO_SPEC.read_text(), "output_image_width: 1248", "output_image_width: 1250")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "output_image_width" in row)
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_experiment_spec(path)
    assert f"{path}:{line}: augmentation_config.preprocessing.output_image_width" in str(info.value)
    assert "multiple of 16, got 1250" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("hflip_probability: 0.5", "hflip_probability: 1.5", r"hflip_probability: must be <= 1"),
        ("deadzone_radius: 0.400000154972", "deadzone_radius: 2.0", r"deadzone_radius: must be <= 1"),
        (
            '    key: "cyclist"\n    value {\n      cov_center_x',
            '    key: "bike"\n    value {\n      cov_center_x',
            r"bbox_rasterizer_config.target_class_config: has no entry for target class\(es\) \['cyclist'\]",
        ),
        (
            '    key: "cyclist"\n    value: "cyclist"',
            '    key: "cyclist"\n    value: "bicycle"',
            r"no label class maps to target class\(es\) \['cyclist'\]",
        ),
        (
            '      name: "bbox"\n      initial_weight: 10.0\n      weight_target: 10.0\n    }\n  }\n  target_classes',
            '      name: "box"\n      initial_weight: 10.0\n      weight_target: 10.0\n    }\n  }\n  target_classes',
            r"class 'car' needs objectives 'cov' and 'bbox'",
        ),
        ("soft_start: 0.10000000149", "soft_start: 0.9", r"soft_start: must be <= annealing"),
        ('arch: "resnet"', 'arch: "resnext"', r"model_config.arch: must be one of"),
    ],
)
def test_semantic_errors_are_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _write(tmp_path, _replace_once(TAO_SPEC.read_text(), old, new))
    with pytest.raises(UserError, match=expected):
        load_experiment_spec(path)


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    text = _replace_once(TAO_SPEC.read_text(), "output_image_height: 384", "output_image_height: 380")
    text = _replace_once(text, "batch_size_per_gpu: 4", "batch_size_per_gpu: 0")
    with pytest.raises(UserError, match=r"2 problem\(s\)") as info:
        load_experiment_spec(_write(tmp_path, text))
    assert "output_image_height" in str(info.value) and "batch_size_per_gpu" in str(info.value)


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    text = _replace_once(
        TAO_SPEC.read_text(),
        'image_directory_path: "/workspace/tao-experiments/data/training"',
        'image_directory_path: "data/training"',
    )
    folder = tmp_path / "nested"
    folder.mkdir()
    spec = load_experiment_spec(_write(folder, text))
    assert spec.dataset_config.data_sources[0].image_directory_path == str((folder / "data" / "training").resolve())


def test_kind_mismatch_is_explained() -> None:
    with pytest.raises(UserError, match="this is a dataset_convert spec"):
        load_experiment_spec(SPECS / "dataset_convert.txt")
    with pytest.raises(UserError, match="this is a training"):
        load_dataset_convert_spec(SPECS / "peoplenet_train.txt")


def test_dataset_convert_checks(tmp_path: Path) -> None:
    text = (SPECS / "dataset_convert.txt").read_text().replace('image_extension: ".jpg"', 'image_extension: "jpg"')
    with pytest.raises(UserError, match="leading dot"):
        load_dataset_convert_spec(_write(tmp_path, text))


def test_unparseable_file_reports_location(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_config {\n  num_layers: 18\n")
    with pytest.raises(UserError, match=re.escape(f"{path}:")):
        detect_spec_kind(path)
    with pytest.raises(UserError, match="empty"):
        detect_spec_kind(_write(tmp_path, "\n", "empty.txt"))


def test_with_data_paths_and_pretrained_model_return_edited_copies(tmp_path: Path) -> None:
    spec = load_experiment_spec(SPECS / "peoplenet_train.txt")
    before = spec.SerializeToString()
    edited = with_pretrained_model(with_data_paths(spec, tmp_path / "train", tmp_path / "val"), tmp_path / "m.hdf5")
    assert spec.SerializeToString() == before  # the original is untouched
    sources = edited.dataset_config.data_sources
    assert [s.image_directory_path for s in sources] == [str(tmp_path / "train")]
    assert sources[0].tfrecords_path == str(tmp_path / "train" / "tfrecords" / "*")
    assert edited.dataset_config.WhichOneof("dataset_split_type") == "validation_data_source"
    assert edited.dataset_config.validation_data_source.image_directory_path == str(tmp_path / "val")
    assert edited.model_config.pretrained_model_file == str(tmp_path / "m.hdf5")
    # Without a validation folder, a spec validating on its own source falls back to fold 0.
    fold = with_data_paths(edited, tmp_path / "other")
    assert fold.dataset_config.WhichOneof("dataset_split_type") == "validation_fold"
    assert fold.dataset_config.validation_fold == 0
    # The written text is a spec TAO (and we) read back identically.
    path = _write(tmp_path, spec_to_text(edited), "edited.txt")
    reread = load_experiment_spec(path)
    assert isinstance(reread, Experiment)
    assert reread == edited


def test_generated_code_fits_the_declared_protobuf_floor() -> None:
    """The *_pb2.py gencode version must not exceed the protobuf lower bound in pyproject."""
    gencode = {
        m.group(1)
        for f in (REPO / "gpu_worker" / "specs" / "proto").glob("*_pb2.py")
        if (m := re.search(r"# Protobuf Python Version: (\S+)", f.read_text()))
    }
    assert len(gencode) == 1
    floors = set(re.findall(r'"protobuf>=([\d.]+)"', (REPO / "pyproject.toml").read_text()))
    assert floors, "pyproject.toml declares no protobuf lower bound"

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in version.split("."))

    for floor in floors:
        assert key(next(iter(gencode))) <= key(floor), (gencode, floor)

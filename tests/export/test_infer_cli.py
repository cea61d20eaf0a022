"""`infer` and `evaluate` command lines on real sample photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gpu_worker.cli import app
from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import DetectNetV2

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "coco-people-val"
DEMO_SPEC = REPO / "specs" / "demo_cpu.txt"
CLASSES = ("person", "bag", "face")


@pytest.fixture(scope="module")
def confident_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random backbone, heads biased to be sure of ~70 px boxes everywhere: detections guaranteed."""
    torch.manual_seed(0)
    model = DetectNetV2(ChannelPlan.standard(10, 3))
    torch.nn.init.constant_(model.output_cov.bias, 3.0)
    torch.nn.init.constant_(model.output_bbox.bias, 1.0)
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", model, CLASSES, (192, 320))


def test_infer_writes_annotated_images_and_kitti_predictions(confident_model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    originals = sorted((SAMPLES / "images").iterdir())[:2]
    for path in originals:
        shutil.copy(path, images / path.name)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["infer", "-m", str(confident_model), "-i", str(images), "-o", str(out)])
    assert result.exit_code == 0, result.output
    for path in originals:
        annotated = out / "images_annotated" / path.name
        with Image.open(path) as original, Image.open(annotated) as drawn:
            assert drawn.size == original.size
            assert drawn.convert("RGB").tobytes() != original.convert("RGB").tobytes()  # boxes drawn
            width, height = original.size
        lines = (out / "labels" / f"{path.stem}.txt").read_text().splitlines()
        assert lines
        for line in lines:
            fields = line.split()
            assert len(fields) == 16
            assert fields[0] in CLASSES
            x1, y1, x2, y2 = (float(v) for v in fields[4:8])
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert 0.1 < float(fields[15]) <= 1.0


def test_infer_with_spec_post_processing_and_single_image(confident_model: Path, tmp_path: Path) -> None:
    image = sorted((SAMPLES / "images").iterdir())[0]
    args = ["infer", "-m", str(confident_model), "-i", str(image), "-o", str(tmp_path), "-e", str(DEMO_SPEC)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "labels" / f"{image.stem}.txt").read_text().strip()


def test_evaluate_cli_writes_metrics_json(confident_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    args = ["evaluate", "-e", str(DEMO_SPEC), "-m", str(confident_model), "--data", str(SAMPLES), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"mAP", "AP/person", "AP/bag", "AP/face"} <= data.keys()
    assert data["details"]["classes"][0]["num_gt"] == 28  # one of 29 people is under the 6 px minimum
    assert data["model"] == str(confident_model)

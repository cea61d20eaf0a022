"""evaluate_model and the reference protocol end to end, on the sample images shipped in the repo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.detection.reference_eval import coco_ap101, reference_ap50
from gpu_worker.errors import UserError
from gpu_worker.specs import load_experiment_spec
from gpu_worker.training.evaluate import evaluate_model
from gpu_worker.training.letterbox import load_image_letterboxed
from gpu_worker.training.predictors import Outputs, Predictor

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "coco-people-val"
DEMO_SPEC = REPO / "specs" / "demo_cpu.txt"
CLASSES = ("person", "bag", "face")
MAPPING = {"person": 0, "backpack": 1, "handbag": 1, "suitcase": 1}
HW = (192, 320)  # the demo spec's input


def labelled_boxes(image: Path, hw: tuple[int, int]) -> list[tuple[int, tuple[float, ...]]]:
    """(channel, box in the letterboxed frame) read independently of the code under test."""
    with Image.open(image) as opened:
        scale = min(hw[1] / opened.width, hw[0] / opened.height)
    out = []
    for line in (image.parent.parent / "labels" / f"{image.stem}.txt").read_text().splitlines():
        fields = line.split()
        if fields and fields[0].lower() in MAPPING:
            out.append((MAPPING[fields[0].lower()], tuple(float(v) * scale for v in fields[4:8])))
    return out


class OraclePredictor(Predictor):
    """Knows the labels of the sample images: paints each box into the cell under its centre."""

    def __init__(self, images: list[Path], hw: tuple[int, int]) -> None:
        self.classes, self.input_hw = CLASSES, hw
        self.truth: dict[bytes, list[tuple[int, tuple[float, ...]]]] = {}
        for path in images:
            pixels, _ = load_image_letterboxed(path, hw[1], hw[0])
            self.truth[pixels.tobytes()] = labelled_boxes(path, hw)

    def predict(self, images: np.ndarray) -> Outputs:
        n, (h, w) = len(images), (self.input_hw[0] // 16, self.input_hw[1] // 16)
        cov = np.zeros((n, len(self.classes), h, w), np.float32)
        bbox = np.zeros((n, 4 * len(self.classes), h, w), np.float32)
        for k, image in enumerate(images):
            for rank, (c, (x1, y1, x2, y2)) in enumerate(self.truth[image.tobytes()]):
                col = min(int((x1 + x2) / 32), w - 1)
                row = min(int((y1 + y2) / 32), h - 1)
                gx, gy = col * 16 + 0.5, row * 16 + 0.5
                cov[k, c, row, col] = 0.9 - 0.001 * rank
                bbox[k, 4 * c : 4 * c + 4, row, col] = np.array([gx - x1, gy - y1, x2 - gx, y2 - gy]) / 35.0
        return cov, bbox


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return load_experiment_spec(DEMO_SPEC, validate=False)


def test_evaluate_model_with_an_oracle_finds_every_labelled_object(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # At 960x544 no two sample objects share a grid cell and none is under the spec's 6 px minimum.
    big = type(spec)()
    big.CopyFrom(spec)
    big.augmentation_config.preprocessing.output_image_width = 960
    big.augmentation_config.preprocessing.output_image_height = 544
    images = sorted((SAMPLES / "images").iterdir())
    oracle = OraclePredictor(images, (544, 960))
    result = evaluate_model(oracle, big, SAMPLES, device="cpu", out_path=tmp_path / "metrics.json")
    person, bag, face = result.metrics.classes
    assert (person.num_gt, bag.num_gt, face.num_gt) == (29, 5, 0)
    assert person.ap == pytest.approx(1.0)
    assert bag.ap == pytest.approx(1.0)
    assert (person.true_positives, person.num_predictions) == (29, 29)
    assert person.mean_iou > 0.999
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["AP/person"] == pytest.approx(person.ap)
    assert data["details"]["num_images"] == len(images)


def test_pt_and_onnx_evaluate_the_same(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gpu_worker.export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = DetectNetV2(ChannelPlan.standard(10, 3))
    torch.nn.init.constant_(model.output_cov.bias, 2.0)  # confident everywhere: plenty of detections
    torch.nn.init.constant_(model.output_bbox.bias, 1.0)
    model_path = save_model(tmp_path / "model.pt", model, CLASSES, HW)
    onnx_path = export_onnx(model_path, tmp_path / "model.onnx")
    via_torch = evaluate_model(model_path, spec, SAMPLES, device="cpu").metrics
    via_onnx = evaluate_model(onnx_path, spec, SAMPLES, device="cpu").metrics
    assert via_torch.classes[0].num_predictions > 100
    # Outputs agree to 1e-4 (test_onnx_export); with hundreds of near-equal candidates NMS may order
    # one pair differently, so counts agree to within 1 %.
    for a, b in zip(via_torch.classes, via_onnx.classes, strict=True):
        assert abs(a.num_predictions - b.num_predictions) <= max(1, a.num_predictions // 100)
        assert abs(a.true_positives - b.true_positives) <= max(1, a.true_positives // 100)
        assert a.ap == pytest.approx(b.ap, abs=0.02)


def test_model_and_spec_must_agree(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_path = save_model(tmp_path / "m.pt", DetectNetV2(ChannelPlan.standard(10, 2)), ("person", "bag"), HW)
    with pytest.raises(UserError, match="target_classes"):
        evaluate_model(model_path, spec, SAMPLES, device="cpu")
    model_path = save_model(tmp_path / "m3.pt", DetectNetV2(ChannelPlan.standard(10, 3)), CLASSES, (96, 160))
    with pytest.raises(UserError, match="preprocessing"):
        evaluate_model(model_path, spec, SAMPLES, device="cpu")


def test_coco_ap101_known_values() -> None:
    assert coco_ap101(np.array([True, True]), 2) == pytest.approx(1.0)
    assert coco_ap101(np.array([True, False, True]), 2) == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert coco_ap101(np.array([True]), 2) == pytest.approx(51 / 101)
    assert coco_ap101(np.array([], dtype=bool), 3) == 0.0
    assert np.isnan(coco_ap101(np.array([False]), 0))


def test_reference_protocol_with_an_oracle() -> None:
    images = sorted((SAMPLES / "images").iterdir())
    oracle = OraclePredictor(images, (544, 960))
    result = reference_ap50(oracle.predict_one, SAMPLES, {"person": 0, "backpack": 1, "suitcase": 1})
    assert result.num_images == len(images)
    assert result.num_gt == {0: 29, 1: 5}
    assert result.ap50[0] > 0.95  # two people may share a centre cell; nothing else is lost
    assert result.named(CLASSES)["AP50/person"] == result.ap50[0]


@pytest.mark.shared
@pytest.mark.slow
def test_reference_protocol_reproduces_peoplenet_on_coco128_val(peoplenet_tflite: Path, coco_kitti: Path) -> None:
    """The real PeopleNet, measured the documented way, gives the documented AP50 (0.39)."""
    from gpu_worker.detection.reference_eval import tflite_predict_fn

    result = reference_ap50(tflite_predict_fn(peoplenet_tflite), coco_kitti / "val", {"person": 0})
    assert result.num_gt[0] == 350
    assert result.ap50[0] == pytest.approx(0.39, abs=0.01)

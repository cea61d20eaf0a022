"""On-device augmentation (boxes follow the pixels) and the batch loader (deterministic, resumable)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gpu_worker.specs.proto.experiment_pb2 import Experiment
from gpu_worker.training.augment import (
    AugmentConfig,
    augment_batch,
    spatial_matrices,
    transform_boxes,
)
from gpu_worker.training.data import Batch, BatchLoader, prepare_cache

W, H = 64, 48


def _white_box_image(box: tuple[int, int, int, int]) -> torch.Tensor:
    image = torch.zeros(1, 3, H, W)
    x1, y1, x2, y2 = box
    image[:, :, y1:y2, x1:x2] = 1.0
    return image


def _bright_hull(image: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(image[0, 0] > 0.5, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_hflip_golden_case() -> None:
    config = AugmentConfig(hflip_probability=1.0)
    image = _white_box_image((10, 20, 30, 40))
    boxes = [torch.tensor([[10.0, 20.0, 30.0, 40.0]])]
    classes = [torch.tensor([2])]
    out, out_boxes, out_classes = augment_batch(
        image, boxes, classes, torch.tensor([[W, H]]), config, torch.Generator().manual_seed(0)
    )
    assert out_boxes[0].tolist() == [[34.0, 20.0, 54.0, 40.0]]
    assert out_classes[0].tolist() == [2]
    assert _bright_hull(out) == [34, 20, 54, 40]
    torch.testing.assert_close(out, torch.flip(image, dims=[3]))


def test_hflip_mirrors_the_letterboxed_content_not_the_padding() -> None:
    config = AugmentConfig(hflip_probability=1.0)
    content = torch.tensor([[48, H]])  # 16 px of zero padding on the right
    matrix = spatial_matrices(config, content, torch.Generator().manual_seed(0))[0]
    boxes, _ = transform_boxes(torch.tensor([[10.0, 5.0, 30.0, 25.0]]), torch.tensor([0]), matrix, W, H, config)
    assert boxes.tolist() == [[18.0, 5.0, 38.0, 25.0]]


def test_min_bbox_filter_and_out_of_frame_boxes_are_dropped() -> None:
    config = AugmentConfig(min_bbox_width=5.0, min_bbox_height=5.0)
    shift = torch.eye(3, dtype=torch.float64)
    shift[0, 2] = 40.0  # move everything 40 px right
    boxes = torch.tensor([[0.0, 0.0, 3.0, 20.0], [0.0, 0.0, 10.0, 10.0], [30.0, 0.0, 50.0, 10.0]])
    out, cls = transform_boxes(boxes, torch.tensor([0, 1, 2]), shift, W, H, config)
    # box 0: 3 px wide -> dropped; box 1 -> [40, 50]; box 2 -> [70, 90] outside, clipped to nothing.
    assert out.tolist() == [[40.0, 0.0, 50.0, 10.0]]
    assert cls.tolist() == [1]
    _, _, kept_classes = augment_batch(
        torch.zeros(1, 3, H, W),
        [boxes],
        [torch.tensor([0, 1, 2])],
        torch.tensor([[W, H]]),
        config,
        torch.Generator().manual_seed(0),
    )
    assert kept_classes[0].tolist() == [1, 2]  # no spatial change: only the 3-px box goes


@pytest.mark.parametrize("seed", range(6))
def test_boxes_follow_pixels_under_zoom_translate_rotate(seed: int) -> None:
    config = AugmentConfig(
        hflip_probability=0.5,
        vflip_probability=0.5,
        zoom_min=0.7,
        zoom_max=1.3,
        translate_max_x=6.0,
        translate_max_y=6.0,
        rotate_rad_max=0.0,
    )
    box = (16, 12, 40, 30)
    out, boxes, _ = augment_batch(
        _white_box_image(box),
        [torch.tensor([box], dtype=torch.float32)],
        [torch.tensor([0])],
        torch.tensor([[W, H]]),
        config,
        torch.Generator().manual_seed(seed),
    )
    hull = torch.tensor(_bright_hull(out), dtype=torch.float32)
    torch.testing.assert_close(boxes[0][0], hull, atol=1.0, rtol=0.0)


def test_color_augmentation_keeps_grey_under_hue_rotation_and_stays_in_range() -> None:
    grey = torch.full((2, 3, 8, 8), 0.4)
    out, _, _ = augment_batch(
        grey,
        [torch.zeros(0, 4)] * 2,
        [torch.zeros(0, dtype=torch.long)] * 2,
        torch.tensor([[8, 8]] * 2),
        AugmentConfig(hue_rotation_max=90.0),
        torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(out, grey)
    rgb = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    strong = AugmentConfig(
        hue_rotation_max=60, saturation_shift_max=0.9, contrast_scale_max=0.9, color_shift_stddev=0.3
    )
    out, _, _ = augment_batch(
        rgb,
        [torch.zeros(0, 4)] * 4,
        [torch.zeros(0, dtype=torch.long)] * 4,
        torch.tensor([[8, 8]] * 4),
        strong,
        torch.Generator().manual_seed(3),
    )
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.allclose(out, rgb)


def _same(a: Batch, b: Batch) -> bool:
    return (
        a.paths == b.paths
        and torch.equal(a.images, b.images)
        and all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
        and all(torch.equal(x, y) for x, y in zip(a.classes, b.classes, strict=True))
    )


def test_loader_is_deterministic_and_resumable(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    spec = spec_for(synthetic_kitti(tmp_path / "kitti", 10))
    spec.dataset_config.ClearField("validation_fold")
    prepared = prepare_cache(spec, tmp_path / "cache")
    augment = AugmentConfig.from_spec(spec)

    def loader(**overrides: object) -> BatchLoader:
        args: dict[str, object] = dict(batch_size=4, device="cpu", shuffle=True, augment=augment, seed=3)
        args.update(overrides)
        return BatchLoader(prepared.train, **args)  # type: ignore[arg-type]

    first = loader()
    first.set_epoch(2)
    run_a = list(first)
    second = loader(prefetch=False)
    second.set_epoch(2)
    run_b = list(second)
    assert len(first) == 3 and [len(b) for b in run_a] == [4, 4, 2]
    assert all(_same(a, b) for a, b in zip(run_a, run_b, strict=True))
    batch = run_a[0]
    assert batch.images.shape == (4, 3, 192, 320) and batch.images.dtype == torch.float32
    assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
    assert batch.scales.shape == (4,) and batch.weights.tolist() == [1.0] * 4

    resumed = loader()
    resumed.set_epoch(2, start_batch=1)  # e.g. after a checkpoint mid-epoch
    assert all(_same(a, b) for a, b in zip(run_a[1:], list(resumed), strict=True))

    other_epoch = loader()
    other_epoch.set_epoch(3)
    assert [p for b in other_epoch for p in b.paths] != [p for b in run_a for p in b.paths]
    dropped = loader(drop_last=True)
    assert len(dropped) == 2 and [len(b) for b in dropped] == [4, 4]


def test_loader_without_augmentation_returns_the_cache_content(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    spec = spec_for(synthetic_kitti(tmp_path / "kitti", 3))
    spec.dataset_config.ClearField("validation_fold")
    split = prepare_cache(spec, tmp_path / "cache").train
    (batch,) = list(BatchLoader(split, batch_size=3, shuffle=False))
    assert batch.paths == list(split.paths)
    expected = torch.from_numpy(np.array(split.images)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(batch.images, expected)
    for i in range(3):
        torch.testing.assert_close(batch.boxes[i], torch.from_numpy(split.targets(i)[0].copy()))


def test_augment_config_from_spec_reads_tao_fields(spec_for: Callable[..., Experiment], tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    config = AugmentConfig.from_spec(spec)
    assert config.hflip_probability == 0.5
    assert config.translate_max_x == 8.0
    assert config.hue_rotation_max == 25.0
    assert config.min_bbox_width == 1.0
    spec.augmentation_config.spatial_augmentation.ClearField("zoom_min")
    spec.augmentation_config.spatial_augmentation.ClearField("zoom_max")
    unset = AugmentConfig.from_spec(spec)
    assert (unset.zoom_min, unset.zoom_max) == (1.0, 1.0)  # unset zoom means no zoom
    assert (
        dataclasses.replace(unset, hflip_probability=0.0, translate_max_x=0, translate_max_y=0).spatial_enabled is False
    )


@pytest.mark.gpu
def test_cuda_batches_match_cpu_batches(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    spec = spec_for(synthetic_kitti(tmp_path / "kitti", 6))
    spec.dataset_config.ClearField("validation_fold")
    split = prepare_cache(spec, tmp_path / "cache").train
    augment = AugmentConfig.from_spec(spec)
    runs = {}
    for device in ("cpu", "cuda"):
        loader = BatchLoader(split, 3, device, shuffle=True, augment=augment, seed=5)
        loader.set_epoch(1)
        runs[device] = list(loader)
    for cpu, gpu in zip(runs["cpu"], runs["cuda"], strict=True):
        assert gpu.images.is_cuda and cpu.paths == gpu.paths
        torch.testing.assert_close(gpu.images.cpu(), cpu.images, atol=2e-3, rtol=0)
        for a, b in zip(cpu.boxes, gpu.boxes, strict=True):
            torch.testing.assert_close(b.cpu(), a, atol=1e-3, rtol=0)

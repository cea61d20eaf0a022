"""Rasteriser: hand-computed golden cases and a cell-by-cell port of TAO's rasterize_bbox kernel."""

from __future__ import annotations

import math

import torch

from gpu_worker.detection.rasterizer import ClassRasterParams, RasterizerConfig, rasterize

ONE_CLASS = RasterizerConfig(classes=(ClassRasterParams(),), deadzone_radius=0.67)


def _one(
    boxes: list[list[float]],
    classes: list[int],
    config: RasterizerConfig,
    out_hw: tuple[int, int],
    in_hw: tuple[int, int],
):
    return rasterize(
        [torch.tensor(boxes).reshape(-1, 4)], [torch.tensor(classes, dtype=torch.long)], config, out_hw, in_hw
    )


def test_centred_box_golden() -> None:
    # Box (1..3, 1..3) in cells: radius 0.4 clamps to bbox_min_radius 1, a circle around (2, 2); each of
    # the four cells it touches has 13 of its 16 sub-samples inside the circle.
    t = _one([[16, 16, 48, 48]], [0], ONE_CLASS, (4, 4), (64, 64))
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = 13 / 16
    torch.testing.assert_close(t.cov[0, 0], expected)
    torch.testing.assert_close(t.cov_norm[0, 0], expected / 4)  # 1 / (4 * rx * ry)
    # Cell (1, 1) has its grid point at (16.5, 16.5): distances to the edges / 35.
    torch.testing.assert_close(t.bbox[0, :, 1, 1], torch.tensor([0.5, 0.5, 31.5, 31.5]) / 35)
    assert t.bbox[0, :, 0, 0].abs().sum() == 0  # no bbox target outside the coverage


def test_min_radius_keeps_aspect_ratio() -> None:
    # 2 x 10 cells: radii (0.4, 2.0) -> x clamped to 1, y scaled to 5 (aspect kept); 1 / (4 * 1 * 5).
    t = _one([[0, 0, 32, 160]], [0], ONE_CLASS, (10, 4), (160, 64))
    cov = t.cov[0, 0]
    assert cov[:, 2:].sum() == 0 and cov[:, :2].min() > 0  # full height, two columns
    torch.testing.assert_close(t.cov_norm[0, 0], cov * 0.05)
    assert float(cov.min()) >= 0.0 and float(cov.max()) <= 1.0


def test_empty_image_gives_zero_targets() -> None:
    t = rasterize(
        [torch.zeros(0, 4), torch.tensor([[16.0, 16, 48, 48]])],
        [torch.zeros(0, dtype=torch.long), torch.tensor([0])],
        ONE_CLASS,
        (4, 4),
        (64, 64),
    )
    assert t.cov[0].abs().sum() == 0 and t.cov_norm[0].abs().sum() == 0 and t.bbox[0].abs().sum() == 0
    assert t.cov[1].sum() > 0


def test_classes_do_not_interact() -> None:
    two = RasterizerConfig(classes=(ClassRasterParams(), ClassRasterParams()), deadzone_radius=0.67)
    alone = _one([[16, 16, 48, 48]], [0], two, (4, 4), (64, 64))
    both = _one([[16, 16, 48, 48], [0, 0, 64, 64]], [0, 1], two, (4, 4), (64, 64))
    torch.testing.assert_close(both.cov[0, 0], alone.cov[0, 0])
    torch.testing.assert_close(both.bbox[0, :4], alone.bbox[0, :4])
    assert both.cov[0, 1].sum() > 0


def _reference(
    boxes: list[list[float]], params: ClassRasterParams, deadzone: float, out_hw: tuple[int, int], stride: float
):
    """Cell-by-cell port of TAO's bbox_from_rumpy_params + _RasterizeBboxKernel (one class, one image)."""
    h, w = out_hw
    prepared = []
    for x1, y1, x2, y2 in sorted(boxes, key=lambda b: b[3]):  # back to front by ymax
        a, b, c, d = x1 / stride, y1 / stride, x2 / stride, y2 / stride
        cx, cy = a + params.cov_center_x * (c - a), b + params.cov_center_y * (d - b)
        sx = cx - a if params.cov_center_x < 0.5 else c - cx
        sy = cy - b if params.cov_center_y < 0.5 else d - cy
        csx, csy = max(params.cov_radius_x * sx, 0.1), max(params.cov_radius_y * sy, 0.1)
        m = params.bbox_min_radius
        csx, csy = max(csx, m), (m * csy / csx if csx < m else csy)
        csx, csy = (m * csx / csy if csy < m else csx), max(csy, m)
        dsx = max((1 - deadzone) * csx + deadzone * sx, csx)
        dsy = max((1 - deadzone) * csy + deadzone * sy, csy)
        prepared.append((x1, y1, x2, y2, cx, cy, csx, csy, dsx, dsy, 1 / max(4 * csx * csy, 1)))
    cov = [[0.0] * w for _ in range(h)]
    norm = [[0.0] * w for _ in range(h)]
    box = [[[0.0] * 4 for _ in range(w)] for _ in range(h)]
    for y in range(h):
        for x in range(w):
            best, value, weight, coded = 0.0, 0.0, 0.0, [0.0] * 4
            for x1, y1, x2, y2, cx, cy, csx, csy, dsx, dsy, inv_area in prepared:
                a_frac = c_frac = 0.0
                for sy_i in range(4):
                    for sx_i in range(4):
                        fx, fy = x + (sx_i + 0.5) / 4, y + (sy_i + 0.5) / 4
                        if ((fx - cx) / csx) ** 2 + ((fy - cy) / csy) ** 2 < 1:
                            c_frac += 1 / 16
                        if ((fx - cx) / dsx) ** 2 + ((fy - cy) / dsy) ** 2 < 1:
                            a_frac += 1 / 16
                if a_frac >= best and a_frac > 0:
                    best, value, weight, coded = 0.0, 0.0, 0.0, [0.0] * 4
                if c_frac >= best and c_frac > 0:
                    gx, gy = x * stride + 0.5, y * stride + 0.5
                    best, value, weight = c_frac, c_frac, c_frac * inv_area
                    coded = [(gx - x1) / 35, (gy - y1) / 35, (x2 - gx) / 35, (y2 - gy) / 35]
            cov[y][x], norm[y][x], box[y][x] = value, weight, coded
    return torch.tensor(cov), torch.tensor(norm), torch.tensor(box).permute(2, 0, 1)


def test_matches_tao_kernel_on_overlapping_boxes() -> None:
    generator = torch.Generator().manual_seed(3)
    params = ClassRasterParams(
        cov_center_x=0.5, cov_center_y=0.4, cov_radius_x=0.6, cov_radius_y=0.5, bbox_min_radius=0.8
    )
    config = RasterizerConfig(classes=(params,), deadzone_radius=0.67)
    for _ in range(3):
        xy = torch.rand(6, 2, generator=generator) * torch.tensor([120.0, 90.0])
        wh = torch.rand(6, 2, generator=generator) * 80 + 4
        boxes = torch.cat([xy, xy + wh], dim=1)
        t = _one(boxes.tolist(), [0] * 6, config, (8, 10), (128, 160))
        cov, norm, coded = _reference(boxes.tolist(), params, 0.67, (8, 10), 16.0)
        torch.testing.assert_close(t.cov[0, 0], cov, atol=1e-6, rtol=0)
        torch.testing.assert_close(t.cov_norm[0, 0], norm, atol=1e-6, rtol=0)
        torch.testing.assert_close(t.bbox[0], coded, atol=1e-5, rtol=0)
        assert math.isclose(float(t.cov.max()), float(cov.max()))

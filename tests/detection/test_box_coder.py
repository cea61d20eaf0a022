"""Box coding: encode/decode are exact inverses and match DetectNet_v2's documented decoding."""

from __future__ import annotations

import torch

from gpu_worker.detection import box_coder


def test_encode_decode_round_trip() -> None:
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(5, 2, generator=generator) * 200
    wh = torch.rand(5, 2, generator=generator) * 100 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)  # [5, 4]
    coded = box_coder.encode(boxes, 6, 8)  # [5, 4, 6, 8]
    bbox = coded.reshape(1, 5 * 4, 6, 8)  # head layout: class c at channels 4c..4c+3
    decoded = box_coder.decode(bbox)  # [1, 5, 6, 8, 4]
    expected = boxes[None, :, None, None, :].expand_as(decoded)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-4)


def test_decode_matches_documented_formula() -> None:
    bbox = torch.zeros(1, 4, 2, 3)
    bbox[0, :, 1, 2] = torch.tensor([1.0, 0.5, 2.0, 0.25])
    boxes = box_coder.decode(bbox)[0, 0, 1, 2]
    gx, gy = 2 * 16 + 0.5, 1 * 16 + 0.5
    assert boxes.tolist() == [gx - 35.0, gy - 17.5, gx + 70.0, gy + 8.75]


def test_decode_clips_to_image() -> None:
    bbox = torch.full((1, 4, 1, 1), 10.0)  # 350 px each way from (0.5, 0.5)
    boxes = box_coder.decode(bbox, image_hw=(100, 200))[0, 0, 0, 0]
    assert boxes.tolist() == [0.0, 0.0, 200.0, 100.0]

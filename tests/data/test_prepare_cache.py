"""prepare_cache on real photos: letterboxed pixels, boxes that map back, class mapping, splits, reuse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpu_worker.errors import UserError
from gpu_worker.specs.proto.experiment_pb2 import Experiment
from gpu_worker.training.data import load_image_letterboxed, prepare_cache
from gpu_worker.training.dataset import select_splits
from gpu_worker.training.kitti import read_kitti_labels
from gpu_worker.training.letterbox import letterbox_geometry

BAG = {"backpack", "handbag", "suitcase"}


def test_letterbox_scales_to_fit_and_pads_right_bottom(tmp_path: Path) -> None:
    pixels = np.full((50, 100, 3), 200, dtype=np.uint8)  # 100 wide, 50 high
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out, scale = load_image_letterboxed(tmp_path / "wide.png", 64, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(0.64)
    assert (out[:32] == 200).all()  # content: 64 x 32 at the top
    assert (out[32:] == 0).all()  # zero padding at the bottom
    g = letterbox_geometry(100, 300, 64, 64)  # tall: pads on the right
    assert (g.new_w, g.new_h) == (21, 64)


@pytest.mark.shared
def test_boxes_map_back_to_original_coordinates(
    coco_subset: Path, tmp_path: Path, spec_for: Callable[..., Experiment]
) -> None:
    spec = spec_for(coco_subset)
    spec.dataset_config.ClearField("validation_fold")  # everything trains
    prepared = prepare_cache(spec, tmp_path / "cache")
    train = prepared.train
    assert prepared.val is None
    assert prepared.class_names == ("person", "bag", "face")
    assert len(train) == 8 and train.images.shape == (8, 192, 320, 3)
    total = 0
    for i, path in enumerate(train.paths):
        with Image.open(path) as image:
            w, h = image.size
        assert tuple(train.orig_sizes[i]) == (w, h)
        scale = float(train.scales[i])
        assert scale == pytest.approx(min(320 / w, 192 / h))
        expected = []
        for o in read_kitti_labels(Path(path).parents[1] / "labels" / f"{Path(path).stem}.txt"):
            if o.name == "person" or o.name in BAG:
                box = [max(o.x1, 0), max(o.y1, 0), min(o.x2, w), min(o.y2, h)]
                if (box[2] - box[0]) * scale >= 1.0 and (box[3] - box[1]) * scale >= 1.0:
                    expected.append((box, 0 if o.name == "person" else 1))
        boxes, classes = train.targets(i)
        assert len(boxes) == len(expected)
        np.testing.assert_allclose(boxes / scale, np.array([e[0] for e in expected]).reshape(-1, 4), atol=1e-3)
        assert classes.tolist() == [e[1] for e in expected]
        total += len(boxes)
        pixels, _ = load_image_letterboxed(path, 320, 192)
        np.testing.assert_array_equal(train.images[i], pixels)
    assert total > 8


@pytest.mark.shared
def test_validation_fold_split_is_deterministic(coco_subset: Path, spec_for: Callable[..., Experiment]) -> None:
    spec = spec_for(coco_subset)  # validation_fold: 0
    train_a, val_a = select_splits(spec, val_split=0.25)
    train_b, val_b = select_splits(spec, val_split=0.25)
    assert val_a is not None and val_b is not None
    names = lambda items: [s.sample.image.name for s in items]  # noqa: E731
    assert names(val_a) == names(val_b) and names(train_a) == names(train_b)
    assert len(val_a) == 2 and len(train_a) == 6
    assert sorted(names(train_a) + names(val_a)) == sorted(p.name for p in (coco_subset / "images").iterdir())
    spec.dataset_config.validation_fold = 1  # the other fold validates
    train_c, val_c = select_splits(spec, val_split=0.25)
    assert val_c is not None
    assert names(val_c) == names(train_a) and names(train_c) == names(val_a)


def test_validation_data_source_and_mapping_drop_unmapped(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    train_dir = synthetic_kitti(tmp_path / "train", 3)
    val_dir = synthetic_kitti(tmp_path / "val", 2)
    prepared = prepare_cache(spec_for(train_dir, val_dir), tmp_path / "cache")
    assert prepared.val is not None
    assert (len(prepared.train), len(prepared.val)) == (3, 2)
    # "dog" is not in target_class_mapping: only the person box of each image remains.
    assert prepared.train.classes.tolist() == [0, 0, 0]
    assert np.diff(prepared.train.offsets).tolist() == [1, 1, 1]


def test_cache_is_reused_and_rebuilt_when_labels_change(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    data = synthetic_kitti(tmp_path / "kitti", 3)
    spec = spec_for(data)
    spec.dataset_config.ClearField("validation_fold")
    first = prepare_cache(spec, tmp_path / "cache")
    stamp = (first.train.root / "images.u8").stat().st_mtime_ns
    again = prepare_cache(spec, tmp_path / "cache")
    assert (again.train.root / "images.u8").stat().st_mtime_ns == stamp
    label = data / "labels" / "img_000.txt"
    label.write_text("")  # now an image with no objects
    rebuilt = prepare_cache(spec, tmp_path / "cache")
    assert rebuilt.train.targets(0)[0].shape == (0, 4)
    assert not (tmp_path / "cache" / "train.tmp").exists()


def test_bad_label_line_names_file_and_line(
    tmp_path: Path, synthetic_kitti: Callable[..., Path], spec_for: Callable[..., Experiment]
) -> None:
    data = synthetic_kitti(tmp_path / "kitti", 2)
    (data / "labels" / "img_001.txt").write_text("person 0 0 0 1 2 3 4\nperson 0 0 0 1 2 x 4\n")
    with pytest.raises(UserError, match=r"img_001.txt:2: box corners"):
        prepare_cache(spec_for(data), tmp_path / "cache")
    (data / "labels" / "img_001.txt").unlink()
    with pytest.raises(UserError, match="have no label file"):
        prepare_cache(spec_for(data), tmp_path / "cache")

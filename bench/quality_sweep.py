"""Small GPU sweep behind the issue-4 settings: fine-tune variants from the imported PeopleNet, then
prune (>= 30 % fewer parameters) + retrain variants from the best fine-tune. Reference-protocol AP50
(person) on coco128-kitti/val for each; one JSON line per run, also appended to WORK/sweep.jsonl.

    python bench/quality_sweep.py --shared .carry/shared --base .carry/bench/peoplenet_imported.pt --work $OUT
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import quality as Q  # noqa: E402

FINETUNE = [
    # name, batch norm re-created, max lr, epochs, coverage_foreground_weight, zoom (min, max), freeze_blocks
    ("bn_lr5e-4_e80", True, 5e-4, 80, 0.05, (1.0, 1.0), (0, 1)),
    ("bn_lr1e-4_e120", True, 1e-4, 120, 0.05, (1.0, 1.0), (0, 1)),
    ("bn_lr5e-4_e120_zoom", True, 5e-4, 120, 0.05, (0.7, 1.3), (0, 1)),
    ("bn_lr5e-4_e120_fg0.25", True, 5e-4, 120, 0.25, (1.0, 1.0), (0, 1)),
    ("folded_lr1e-4_e120", False, 1e-4, 120, 0.05, (1.0, 1.0), (0, 1)),
    ("bn_lr1e-4_e120_fg0.25", True, 1e-4, 120, 0.25, (1.0, 1.0), (0, 1)),
    ("bn_lr1e-4_e200_fg0.25", True, 1e-4, 200, 0.25, (1.0, 1.0), (0, 1)),
    ("bn_lr2e-4_e200_fg0.25_nofreeze", True, 2e-4, 200, 0.25, (1.0, 1.0), ()),
]
# name, max lr, epochs, auto-weighting (TAO's update drives the coverage weight towards ~1e-3 on this data)
RETRAIN = [
    ("lr5e-4_e80", 5e-4, 80, True),
    ("lr5e-4_e150", 5e-4, 150, True),
    ("lr1e-4_e150_noauto", 1e-4, 150, False),
    ("lr5e-4_e150_noauto", 5e-4, 150, False),
]


def edit(spec: Any, max_lr: float, epochs: int, fg: float, zoom: tuple[float, float], freeze: tuple[int, ...]) -> Any:
    spec.training_config.num_epochs = epochs
    spec.training_config.learning_rate.soft_start_annealing_schedule.max_learning_rate = max_lr
    for target in spec.cost_function_config.target_classes:
        target.coverage_foreground_weight = fg
    spec.augmentation_config.spatial_augmentation.zoom_min = zoom[0]
    spec.augmentation_config.spatial_augmentation.zoom_max = zoom[1]
    if hasattr(spec.model_config, "freeze_blocks"):
        del spec.model_config.freeze_blocks[:]
        spec.model_config.freeze_blocks.extend(freeze)
    return spec


def main() -> None:
    import torch

    from gpu_worker.detection.checkpoint import load_model, save_model
    from gpu_worker.importers.batchnorm import recreate_batch_norm
    from gpu_worker.pruning import PruneSettings
    from gpu_worker.pruning.iterative import prune_to_reduction
    from gpu_worker.training.letterbox import load_image_letterboxed
    from gpu_worker.training.train import train

    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--log", default="", help="JSON-lines file (default WORK/sweep.jsonl)")
    parser.add_argument("--only", default="", help="comma-separated fine-tune names")
    parser.add_argument("--only-retrain", default="", help="comma-separated retrain names")
    args = parser.parse_args()
    shared, work = Path(args.shared), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train_dir = shared / "data" / "coco128-kitti" / "train"
    val_dir = shared / "data" / "coco128-kitti" / "val"
    log = Path(args.log) if args.log else work / "sweep.jsonl"

    def emit(record: dict[str, Any]) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        with log.open("a") as handle:
            handle.write(line + "\n")

    def ap(model: Any) -> float:
        return Q.reference(Q.torch_predict_fn_on(model, "cuda"), val_dir)["AP50/person"]

    base, meta = load_model(args.base)
    calib = torch.stack(
        [
            torch.from_numpy(load_image_letterboxed(p, 960, 544)[0]).permute(2, 0, 1).float() / 255.0
            for p in Q.kitti_images(train_dir)[:32]
        ]
    )
    bn_base = recreate_batch_norm(base.cuda(), calib).cpu()
    bn_path = save_model(work / "base_bn.pt", bn_base, meta.classes, meta.input_hw, extra={"batch_norm": "calibrated"})
    emit({"run": "base_bn_eval", "AP50/person": ap(bn_base)})
    best: tuple[float, Path, str] = (-1.0, Path(), "")
    only = set(filter(None, args.only.split(",")))
    for name, use_bn, lr, epochs, fg, zoom, freeze in FINETUNE:
        if only and name not in only:
            continue
        spec = edit(Q.load_spec("peoplenet_train.txt", train_dir, val_dir), lr, epochs, fg, zoom, freeze)
        t = time.perf_counter()
        result = train(
            spec,
            work / name,
            base_model=bn_path if use_bn else Path(args.base),
            device="cuda",
            cache_dir=work / "cache",
        )
        model, _ = load_model(result.model_path)
        score = ap(model)
        hist = result.history
        emit(
            {
                "run": name,
                "AP50/person": score,
                "seconds": round(time.perf_counter() - t, 1),
                "cov_loss": [round(hist[0]["cov_loss"], 5), round(hist[-1]["cov_loss"], 5)],
            }
        )
        if score > best[0]:
            best = (score, result.model_path, name)
    ft_model, ft_meta = load_model(best[1])
    # One deep cut (TAO's single `prune`), for comparison with the pipeline's iterative default.
    threshold, pruned = prune_to_reduction(ft_model.cpu(), PruneSettings(), Q.TARGET_REDUCTION)
    pruned_path = save_model(work / "pruned.pt", pruned.model, ft_meta.classes, ft_meta.input_hw)
    emit(
        {
            "run": f"pruned_from_{best[2]}",
            "threshold": threshold,
            "reduction": round(1 - pruned.ratio, 4),
            "AP50/person": ap(pruned.model),
        }
    )
    only_retrain = set(filter(None, args.only_retrain.split(",")))
    for name, lr, epochs, autoweighting in RETRAIN:
        if only_retrain and name not in only_retrain:
            continue
        spec = Q.load_spec("peoplenet_retrain.txt", train_dir, val_dir)
        spec.cost_function_config.enable_autoweighting = autoweighting
        spec.training_config.num_epochs = epochs
        spec.training_config.learning_rate.soft_start_annealing_schedule.max_learning_rate = lr
        t = time.perf_counter()
        result = train(spec, work / f"retrain_{name}", base_model=pruned_path, device="cuda", cache_dir=work / "cache")
        model, _ = load_model(result.model_path)
        emit({"run": f"retrain_{name}", "AP50/person": ap(model), "seconds": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    main()

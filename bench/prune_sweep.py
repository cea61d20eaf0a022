"""GPU sweep of the prune + retrain recipe on one fine-tuned PeopleNet: >= 30 % fewer parameters, then
reference-protocol AP50 (person) on coco128-kitti/val after the cut and after the retrain, per variant.

Variant fields: prune step (share of parameters per cut; 0.30 = one cut), least-squares reconstruction of
each cut (pruning/reconstruct.py), feature-hint weight (training/hints.py), layers excluded from pruning,
epochs of the final retrain. Every retrain distils from the fine-tuned model (weight 1).

    python bench/prune_sweep.py --shared .carry/shared --model finetuned.pt --work /tmp/ps \\
        --results $OUT/prune_sweep.json --variants base,hints,hints_ls
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import quality as Q  # noqa: E402
from sweep import run_sweep, sweep_parser  # noqa: E402

EARLY_LAYERS = "conv1,block_1a_conv_1,block_1a_conv_2,block_1a_conv_shortcut,block_1b_conv_1,block_1b_conv_2,\
block_1b_conv_shortcut,block_1c_conv_1,block_1c_conv_2,block_1c_conv_shortcut"


@dataclass(frozen=True)
class Variant:
    step: float = 0.05
    reconstruct: bool = False
    hint_weight: float = 0.0
    excluded: str = ""
    epochs: int = 80
    step_epochs: int | None = None  # retrain epochs between cuts (None: a quarter of the retrain spec's)
    learning_rate: float | None = None  # the final retrain's max learning rate (None: the spec's)
    balanced: bool = False  # every layer keeps the same share (PruneSettings.keep_fraction), not a threshold


VARIANTS = {
    "base": Variant(),
    "hints": Variant(hint_weight=0.01),
    "hints1": Variant(hint_weight=1.0),
    "hints_ls": Variant(reconstruct=True, hint_weight=0.01),
    "hints_early": Variant(hint_weight=0.01, excluded=EARLY_LAYERS),
    "hints_ls_early": Variant(reconstruct=True, hint_weight=0.01, excluded=EARLY_LAYERS),
    "oneshot_ls_hints": Variant(step=0.30, reconstruct=True, hint_weight=0.01, epochs=120),
    "hints_e160": Variant(hint_weight=0.01, epochs=160),
    "h1_e200": Variant(hint_weight=1.0, epochs=200),
    "h10": Variant(hint_weight=10.0),
    "h1_lr5e-4": Variant(hint_weight=1.0, learning_rate=5e-4),
    "h1_steps40": Variant(hint_weight=1.0, step_epochs=40),
    "h10_e200_steps40": Variant(hint_weight=10.0, epochs=200, step_epochs=40),
    "h1_balanced": Variant(hint_weight=1.0, balanced=True),
    "h1_balanced_oneshot": Variant(step=0.30, hint_weight=1.0, balanced=True, epochs=120),
}


def run_variant(name: str, variant: Variant, args: argparse.Namespace, device: str) -> dict[str, Any]:
    from gpu_worker.detection.checkpoint import load_model, save_model
    from gpu_worker.pruning import PruneSettings, parse_layers
    from gpu_worker.specs.proto.experiment_pb2 import Experiment
    from gpu_worker.training.hints import KEPT_CHANNELS_KEY
    from gpu_worker.training.prune_retrain import prune_with_retraining
    from gpu_worker.training.train import train

    shared, work = Path(args.shared), Path(args.work) / name
    train_dir = shared / "data" / "coco128-kitti" / "train"
    val_dir = shared / "data" / "coco128-kitti" / "val"
    spec = Q.load_spec("peoplenet_retrain.txt", train_dir, val_dir)
    model, meta = load_model(args.model)
    started = time.perf_counter()
    settings = PruneSettings(
        scale_by_batch_norm=True,
        excluded_layers=parse_layers(variant.excluded),
        keep_fraction=1.0 if variant.balanced else None,
    )
    stepped = prune_with_retraining(
        model,
        meta,
        settings,
        spec,
        work / "steps",
        target_reduction=Q.TARGET_REDUCTION,
        step_reduction=variant.step,
        step_epochs=variant.step_epochs,
        device=device,
        cache_dir=Path(args.work) / "cache",
        teacher=Path(args.model),
        hint_weight=variant.hint_weight,
        reconstruct=variant.reconstruct,
    )
    pruned = save_model(
        work / "pruned.pt", stepped.model, meta.classes, meta.input_hw, extra={KEPT_CHANNELS_KEY: stepped.kept}
    )
    cut_ap = Q.reference(Q.torch_predict_fn_on(stepped.model, device), val_dir)["AP50/person"]
    final = Experiment()
    final.CopyFrom(spec)
    final.training_config.num_epochs = variant.epochs
    if variant.learning_rate is not None:
        final.training_config.learning_rate.soft_start_annealing_schedule.max_learning_rate = variant.learning_rate
    result = train(
        final,
        work / "retrain",
        base_model=pruned,
        device=device,
        cache_dir=Path(args.work) / "cache",
        teacher=Path(args.model),
        distill_weight=1.0,
        hint_weight=variant.hint_weight,
    )
    retrained, _ = load_model(result.model_path)
    return {
        **asdict(variant),
        "steps": len(stepped.steps),
        "reduction": round(stepped.reduction, 4),
        "AP50_after_cut": cut_ap,
        "AP50_retrained": Q.reference(Q.torch_predict_fn_on(retrained, device), val_dir)["AP50/person"],
        "seconds": round(time.perf_counter() - started, 1),
        "model": str(result.model_path),
    }


def main() -> None:
    import torch

    parser = sweep_parser(__doc__, "prune_sweep", VARIANTS, "the fine-tuned (unpruned) model file; also the teacher")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict[str, Any] = {"machine": Q.machine(), "model": Path(args.model).name}
    run_sweep(
        args.variants, args.deadline, results, Path(args.results), lambda n: run_variant(n, VARIANTS[n], args, device)
    )


if __name__ == "__main__":
    main()

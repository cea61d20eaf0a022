"""GPU sweep of quantisation-aware fine-tuning (training/qat_finetune.py) of one fine-tuned PeopleNet: per variant,
reference-protocol AP50 (person) on coco128-kitti/val of the QAT model's fp32 ONNX and of its INT8 QDQ ONNX
(QAT scales), both with onnxruntime on the CPU, against the fine-tuned model's fp32 ONNX.

    python bench/qat_sweep.py --shared .carry/shared --model finetuned.pt --work /tmp/qs \\
        --results $OUT/qat_sweep.json --variants e40,e40_hints
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


@dataclass(frozen=True)
class Variant:
    epochs: int = 40
    learning_rate: float = 1e-5
    distill_weight: float = 1.0
    hint_weight: float = 0.0


VARIANTS = {
    "e40": Variant(),
    "e40_hints": Variant(hint_weight=1.0),
    "e80_hints": Variant(epochs=80, hint_weight=1.0),
    "e80_d3": Variant(epochs=80, distill_weight=3.0),
    "e40_hints10": Variant(hint_weight=10.0),
    "e20_hints": Variant(epochs=20, hint_weight=1.0),
    "e40_lr3e-6_hints": Variant(learning_rate=3e-6, hint_weight=1.0),
}


def onnx_ap(path: Path, val_dir: Path) -> float:
    from gpu_worker.training.predictors import open_predictor

    return float(Q.reference(open_predictor(path, "cpu").predict_one, val_dir)["AP50/person"])


def run_variant(name: str, variant: Variant, args: argparse.Namespace, device: str) -> dict[str, Any]:
    from gpu_worker.export.int8 import export_int8
    from gpu_worker.export.onnx_export import export_onnx
    from gpu_worker.training.qat_finetune import quantization_aware_finetune

    shared, work = Path(args.shared), Path(args.work) / name
    train_dir = shared / "data" / "coco128-kitti" / "train"
    val_dir = shared / "data" / "coco128-kitti" / "val"
    spec = Q.load_spec(args.spec, train_dir, val_dir)
    started = time.perf_counter()
    result = quantization_aware_finetune(
        Path(args.model),
        spec,
        work,
        epochs=variant.epochs,
        device=device,
        cache_dir=Path(args.work) / "cache",
        teacher=Path(args.model),
        distill_weight=variant.distill_weight,
        learning_rate=variant.learning_rate,
        hint_weight=variant.hint_weight,
    )
    seconds = time.perf_counter() - started
    fp32 = export_onnx(result.model_path, work / "model.onnx")
    int8 = export_int8(result.model_path, fp32, work / "model_int8.onnx", Q.kitti_images(train_dir)[:64])
    return {
        **asdict(variant),
        "train_seconds": round(seconds, 1),
        "method": str(int8.method),
        "qat_fp32_onnx": onnx_ap(fp32, val_dir),
        "qat_int8_onnx": onnx_ap(int8.onnx, val_dir),
    }


def main() -> None:
    import torch

    from gpu_worker.export.onnx_export import export_onnx

    parser = sweep_parser(__doc__, "qat_sweep", VARIANTS, "the fine-tuned float model file; also the teacher")
    parser.add_argument("--skip-reference", action="store_true", help="do not evaluate the fine-tuned fp32 ONNX")
    parser.add_argument("--spec", default="peoplenet_train.txt", help="spec file under specs/ the QAT runs follow")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    val_dir = Path(args.shared) / "data" / "coco128-kitti" / "val"
    results: dict[str, Any] = {"machine": Q.machine(), "model": Path(args.model).name, "spec": args.spec}
    if not args.skip_reference:
        results["finetuned_fp32_onnx"] = onnx_ap(export_onnx(Path(args.model), Path(args.work) / "ft.onnx"), val_dir)
    run_sweep(
        args.variants, args.deadline, results, Path(args.results), lambda n: run_variant(n, VARIANTS[n], args, device)
    )


if __name__ == "__main__":
    main()

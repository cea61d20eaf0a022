"""Train DetectNet_v2 ResNet-34 from scratch on coco128-kitti/train at 960x544, evaluate on val, export ONNX.

    python bench/train_coco.py --data ../shared/data/coco128-kitti --epochs 100 \
        --work /tmp/coco-run --out bench/results/train_coco_scratch.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench._common import machine, scratch_spec
from gpu_worker.detection.checkpoint import load_model
from gpu_worker.training.data import BatchLoader, prepare_cache
from gpu_worker.training.engine import evaluate
from gpu_worker.training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="KITTI root with train/ and val/")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("/tmp/peoplenet-coco-run"))
    parser.add_argument("--no-autoweighting", action="store_true", help="fixed objective weights (spec: auto)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_coco_scratch.json"))
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    spec = scratch_spec(args.data / "train", args.data / "val", epochs=args.epochs, batch_size=args.batch_size)
    spec.cost_function_config.enable_autoweighting = not args.no_autoweighting
    start = time.perf_counter()
    result = train(spec, args.work / "results", device=str(device), progress=lambda line: print(line, flush=True),
                   cache_dir=args.work / "cache", log_every=50)  # fmt: skip
    train_seconds = time.perf_counter() - start

    model, meta = load_model(result.model_path, map_location=device)
    prepared = prepare_cache(spec, args.work / "cache")
    assert prepared.val is not None
    metrics = {}
    for split_name, split in (("val", prepared.val), ("train", prepared.train)):
        loader = BatchLoader(split, batch_size=args.batch_size, device=device)
        metrics[split_name] = evaluate(
            model, loader, spec, list(meta.classes), device, amp=device.type == "cuda"
        ).to_dict()

    from gpu_worker.export.onnx_export import export_onnx

    start_export = time.perf_counter()
    onnx_path = export_onnx(result.model_path, args.work / "export" / "model.onnx")
    export_seconds = time.perf_counter() - start_export

    history = result.history
    report = {
        "machine": machine(),
        "task": "scratch training, ResNet-34 DetectNet_v2, 960x544, bf16 autocast"
        if device.type == "cuda"
        else "scratch, fp32",
        "epochs": result.epochs_done,
        "autoweighting": not args.no_autoweighting,
        "batch_size": args.batch_size,
        "train_images": len(prepared.train),
        "val_images": len(prepared.val),
        "train_seconds": train_seconds,
        "mean_images_per_s_last_10_epochs": sum(h["images_per_second"] for h in history[-10:]) / min(len(history), 10),
        "loss_first_epoch": history[0]["loss"],
        "loss_last_epoch": history[-1]["loss"],
        "nonfinite_steps": result.nonfinite_steps,
        "metrics": metrics,
        "onnx": {"path": str(onnx_path), "bytes": onnx_path.stat().st_size, "export_seconds": export_seconds},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Training data throughput: prepare (decode + letterbox once) and BatchLoader images/s.

    python bench/data_throughput.py --device cpu
    python bench/data_throughput.py --device cuda --spec specs/peoplenet_train.txt --batch-size 16

Measures, on the spec's network size: prepare_cache images/s (cold), then the loader with and without
augmentation (CUDA timings synchronised). Writes bench/results/data_throughput_<device>.json.
Data: --data KITTI folder (default ../shared/data/coco128-kitti/train), repeated --repeat times by
epochs so the numbers are not dominated by start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gpu_worker.specs import input_size, load_experiment_spec, with_data_paths  # noqa: E402
from gpu_worker.training.data import AugmentConfig, BatchLoader, prepare_cache  # noqa: E402


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_loader(loader: BatchLoader, epochs: int, device: torch.device) -> dict[str, float]:
    loader.set_epoch(0)
    for _ in loader:  # warm-up: first-touch of the memmap, CUDA kernels, pinned buffers
        pass
    _sync(device)
    images = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        for batch in loader:
            images += len(batch)
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"images": images, "seconds": round(elapsed, 4), "images_per_s": round(images / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "peoplenet_train.txt")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "coco128-kitti" / "train")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    spec = with_data_paths(load_experiment_spec(args.spec), args.data)
    spec.dataset_config.ClearField("validation_fold")
    width, height = input_size(spec)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        prepared = prepare_cache(spec, Path(tmp) / "cache")
        prepare_s = time.perf_counter() - start
        split = prepared.train
        results: dict[str, object] = {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "spec": args.spec.name,
            "input": f"{width}x{height}",
            "images": len(split),
            "batch_size": args.batch_size,
            "prepare": {"seconds": round(prepare_s, 3), "images_per_s": round(len(split) / prepare_s, 1)},
        }
        augment = AugmentConfig.from_spec(spec)
        for name, config in (("no_augmentation", None), ("augmentation", augment)):
            loader = BatchLoader(split, args.batch_size, device, shuffle=True, augment=config, seed=0, drop_last=True)
            results[name] = measure_loader(loader, args.epochs, device)
    out = args.out or REPO / "bench" / "results" / f"data_throughput_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

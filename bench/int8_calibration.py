"""INT8 QDQ calibration sweep (issue 4) -> bench/results/int8_calibration.json.

Quantises an fp32 DetectNet_v2 ONNX (e.g. the imported PeopleNet) with `gpu_worker.export.int8.quantize_qdq`
under several settings and measures AP50(person) of each with onnxruntime on the CPU, reference protocol
(`gpu_worker/detection/reference_eval.py`) on coco128-kitti/val, next to the fp32 ONNX's.

    peoplenet-retrain import-weights ../shared/models/peoplenet/*.tflite -o /tmp/pn.pt
    peoplenet-retrain export -m /tmp/pn.pt -o /tmp/pn.onnx
    python bench/int8_calibration.py --onnx /tmp/pn.onnx --val-images 128 --configs baseline default

Each config takes ~1.5 min on the 2-core CPU (all 128 val images); `--val-images 32` for quick looks.
Besides AP50 the table has output fidelity against fp32 (coverage / bbox errors), which is far less
noisy than AP on 128 images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_CLASSES = {"person": 0, "backpack": 1, "handbag": 1, "suitcase": 1}
ALL_OPS = ("Conv", "Add", "Relu", "Clip")
# name -> quantize_qdq keyword arguments (+ "images": number of calibration images, first N of train).
# Before issue 4's fix: Q/DQ on conv/add/clip inputs and outputs, head convs int8.
OLD = {"op_types": list(ALL_OPS), "quantize_outputs": True, "float_heads": False}
P5 = {"method": "percentile", "percentile": 99.999}
CONFIGS: dict[str, dict[str, Any]] = {
    # What the pipeline runs: quantize_qdq(fp32, out, train[:ExportSettings.calibration_images]).
    "default": {"images": 32},
    "baseline": {**OLD, **P5, "images": 32},
    "p99.99": {**OLD, "method": "percentile", "percentile": 99.99, "images": 32},
    "p99.9": {**OLD, "method": "percentile", "percentile": 99.9, "images": 32},
    "minmax": {**OLD, "method": "minmax", "images": 32},
    "entropy": {**OLD, "method": "entropy", "images": 32},
    "p99.999_conv_only": {**OLD, **P5, "images": 32, "op_types": ["Conv"]},
    "p99.999_float_conv1": {
        **OLD,
        **P5,
        "images": 32,
        "float_first_conv": True,
    },
    "p99.999_no_conv_add_out": {
        **OLD,
        **P5,
        "images": 32,
        "extra_options": {"OpTypesToExcludeOutputQuantization": ["Conv", "Add"]},
    },
    "p99.999_float_heads": {**OLD, **P5, "images": 32, "float_heads": True},
    "p99.99_float_heads": {**OLD, "method": "percentile", "percentile": 99.99, "images": 32, "float_heads": True},
    "minmax_float_heads": {**OLD, "method": "minmax", "images": 32, "float_heads": True},
    "p99.999_float_heads_conv1": {
        **OLD,
        **P5,
        "images": 32,
        "float_heads": True,
        "float_first_conv": True,
    },
    "p99.999_float_heads_no_conv_add_out": {
        **OLD,
        **P5,
        "images": 32,
        "float_heads": True,
        "extra_options": {"OpTypesToExcludeOutputQuantization": ["Conv", "Add"]},
    },
    "p99.999_float_heads_64img": {
        **OLD,
        **P5,
        "images": 64,
        "float_heads": True,
    },
    # quantize_qdq's defaults now: Q/DQ only at conv inputs + weights (TensorRT's placement), head convs float.
    "p99.999_float_heads_conv_inputs_only": {**P5, "images": 32},
    "minmax_float_heads_conv_inputs_only": {"method": "minmax", "images": 32},
    "p99.99_float_heads_conv_inputs_only": {"method": "percentile", "percentile": 99.99, "images": 32},
    "p99.999_float_heads_conv_inputs_only_64img": {**P5, "images": 64},
    "minmax_float_heads_conv_inputs_only_64img": {"method": "minmax", "images": 64},
}


def kitti_images(kitti_dir: Path) -> list[Path]:
    return sorted(p for p in (kitti_dir / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def ap50(onnx_path: Path, val_dir: Path, limit: int) -> tuple[dict[str, float], list[Any]]:
    """Reference-protocol AP50(person) and the raw (cov, bbox) outputs per image."""
    from gpu_worker.detection.reference_eval import reference_ap50
    from gpu_worker.training.predictors import open_predictor

    predictor = open_predictor(onnx_path, "cpu")
    outputs: list[Any] = []

    def predict(image: Any) -> Any:
        outputs.append(predictor.predict_one(image))
        return outputs[-1]

    result = reference_ap50(predict, val_dir, REFERENCE_CLASSES, limit=limit)
    return {"AP50/person": round(result.ap50[0], 4), "detections/person": result.num_detections[0]}, outputs


def fidelity(got: list[Any], ref: list[Any]) -> dict[str, float]:
    """How far INT8 outputs are from fp32: person coverage error (all cells, cells fp32 > 0.1) and bbox error."""
    import numpy as np

    cov = np.stack([g[0][0] for g in got]) - np.stack([r[0][0] for r in ref])
    live = np.stack([r[0][0] for r in ref]) > 0.1
    bbox = np.stack([g[1][:4] for g in got]) - np.stack([r[1][:4] for r in ref])
    live4 = np.broadcast_to(live[:, None], bbox.shape)
    return {
        "cov_mae": round(float(np.abs(cov).mean()), 5),
        "cov_max": round(float(np.abs(cov).max()), 4),
        "cov_live_mae": round(float(np.abs(cov[live]).mean()), 4),
        "cov_live_bias": round(float(cov[live].mean()), 4),
        "bbox_live_mae": round(float(np.abs(bbox[live4]).mean()), 4),
    }


def run_config(name: str, fp32: Path, train_dir: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    from gpu_worker.export.int8 import CalibrationMethod, quantize_qdq, zero_point_violations

    config = dict(CONFIGS[name])
    count = int(config.pop("images"))
    method = CalibrationMethod(config.pop("method")) if "method" in config else None
    images = kitti_images(train_dir)[:count]
    started = time.perf_counter()
    result = quantize_qdq(fp32, work / f"int8_{name}.onnx", images, method=method, **config)
    info = {
        "method": str(result.method),
        "calibration_images": count,
        **{k: v for k, v in CONFIGS[name].items() if k not in ("method", "images")},
        "quantise_seconds": round(time.perf_counter() - started, 1),
        "zero_point_violations": len(zero_point_violations(result.onnx)),
    }
    return result.onnx, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", default="/tmp/pn.onnx", help="fp32 ONNX (peoplenet-retrain export)")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--work", default="/tmp/int8_calibration")
    parser.add_argument("--val-images", type=int, default=128)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "int8_calibration.json"))
    parser.add_argument("--label", default="imported_peoplenet", help="section of the results file")
    args = parser.parse_args()
    import onnxruntime

    fp32, work = Path(args.onnx), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.shared) / "data" / "coco128-kitti"
    results = Path(args.results)
    table = json.loads(results.read_text()) if results.is_file() else {}
    section = table.setdefault(args.label, {})
    section["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "runtime": "onnxruntime CPUExecutionProvider",
    }
    section["protocol"] = "reference_eval: letterbox 960x544, cov > 0.1, NMS 0.5, 101-point AP; calib = train[:N]"
    runs = section.setdefault(f"val{args.val_images}", {})
    runs["fp32"], reference = ap50(fp32, data / "val", args.val_images)
    print("fp32", runs["fp32"], flush=True)
    base = runs["fp32"]["AP50/person"]
    for name in args.configs:
        path, info = run_config(name, fp32, data / "train", work)
        scores, outputs = ap50(path, data / "val", args.val_images)
        info.update(scores)
        info["gap"] = round(info["AP50/person"] - base, 4)
        info.update(fidelity(outputs, reference))
        runs[name] = info
        print(name, info, flush=True)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()

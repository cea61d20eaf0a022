"""Collect what the run report shows: training history, metrics, PR curves, predictions on validation images.

Predictions come from the exported ONNX through onnxruntime, so the report looks the same for both
training backends and shows the artefact that is actually published.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gpu_worker.report.html import ImageView, ReportData, render_report

GRID_IMAGES = 12
PR_POINTS = 50


def _pr_curve(is_tp: np.ndarray, num_gt: int) -> list[tuple[float, float]]:
    if not num_gt or not is_tp.size:
        return []
    tp = np.cumsum(is_tp)
    precision = tp / np.arange(1, is_tp.size + 1)
    recall = tp / num_gt
    step = max(1, is_tp.size // PR_POINTS)
    return [(float(recall[i]), float(precision[i])) for i in range(0, is_tp.size, step)]


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    return [
        {k: float(v) for k, v in epoch.items() if isinstance(v, int | float)} for epoch in json.loads(path.read_text())
    ]


def build_report(
    *,
    onnx_model: Path,
    spec_path: Path,
    metrics: dict[str, float],
    history: dict[str, list[dict[str, float]]],
    facts: dict[str, str],
    title: str,
    out: Path,
) -> Path:
    from gpu_worker.detection.metrics import EvalSettings, match_class
    from gpu_worker.specs import load_experiment_spec
    from gpu_worker.specs.info import target_class_names
    from gpu_worker.training.evaluate import evaluation_samples, load_sample, run_detection
    from gpu_worker.training.predictors import open_predictor

    spec = load_experiment_spec(spec_path)
    class_names = target_class_names(spec)
    predictor = open_predictor(onnx_model, "cpu", fallback_classes=class_names)
    samples, data = evaluation_samples(spec)
    detections, truths = run_detection(predictor, samples, spec, class_names)
    settings = EvalSettings.from_spec(spec, class_names)
    curves = {}
    for index, name in enumerate(class_names):
        is_tp, _, num_gt = match_class(
            detections, truths, index, settings.iou_thresholds[name], settings.box_filters.get(name)
        )
        if num_gt:
            curves[name] = _pr_curve(is_tp, num_gt)
    images = []
    for sample, dets, truth in list(zip(samples, detections, truths, strict=True))[:GRID_IMAGES]:
        loaded = load_sample(sample, spec, class_names, predictor.input_hw)
        images.append(
            ImageView(
                name=sample.image.name,
                pixels=loaded.image,
                predictions=[(d.class_name, (d.x1, d.y1, d.x2, d.y2), d.confidence) for d in dets],
                ground_truth=[
                    (class_names[int(c)], (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
                    for b, c in zip(truth.boxes, truth.classes, strict=True)
                ],
            )
        )
    data_facts = {**facts, "validation data": f"{data} ({len(samples)} images)"}
    report = ReportData(
        job_id=facts.get("job", ""),
        title=title,
        facts=data_facts,
        history=history,
        metrics=metrics,
        pr_curves=curves,
        images=images,
    )
    out.write_text(render_report(report))
    return out

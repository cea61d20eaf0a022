"""Render the run report from plain data (no model, no store): easy to test, easy to read."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from gpu_worker.report.svg import PALETTE, line_chart

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageView:
    """One validation image (uint8 HxWx3, as the network saw it) with predicted and true boxes."""

    name: str
    pixels: Any
    predictions: Sequence[tuple[str, Box, float]]
    ground_truth: Sequence[tuple[str, Box]]


@dataclass
class ReportData:
    job_id: str
    title: str
    facts: dict[str, str]  # dataset, base model, backend, gate decision, ...
    history: dict[str, list[dict[str, float]]]  # training run ("train", "retrain") -> per-epoch values
    metrics: dict[str, float]
    pr_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # class -> (recall, precision)
    images: list[ImageView] = field(default_factory=list)


def _thumbnail(view: ImageView, classes: list[str], max_side: int = 320) -> str:
    from PIL import Image, ImageDraw

    image = Image.fromarray(view.pixels).convert("RGB")
    scale = max_side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for _, box in view.ground_truth:
        draw.rectangle([c * scale for c in box], outline="#00ff00", width=2)
    for name, box, confidence in view.predictions:
        colour = PALETTE[classes.index(name) % len(PALETTE)] if name in classes else "#ff00ff"
        draw.rectangle([c * scale for c in box], outline=colour, width=2)
        draw.text((box[0] * scale + 2, box[1] * scale + 1), f"{name} {confidence:.2f}", fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return (
        f'<figure><img src="data:image/jpeg;base64,{encoded}" alt="{escape(view.name)}"/>'
        f"<figcaption>{escape(view.name)}</figcaption></figure>"
    )


def _loss_charts(history: dict[str, list[dict[str, float]]]) -> str:
    charts = []
    for run, epochs in history.items():
        keys = sorted({k for epoch in epochs for k in epoch if "loss" in k})
        series = {
            k: [(float(e.get("epoch", i + 1)), float(e[k])) for i, e in enumerate(epochs) if k in e] for k in keys
        }
        charts.append(line_chart(series, title=f"{run}: losses per epoch", x_label="epoch", y_label="loss"))
    return "".join(charts) or "<p>no training history recorded</p>"


def render_report(data: ReportData) -> str:
    classes = sorted({k.split("/", 1)[1] for k in data.metrics if k.startswith("AP/")})
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in sorted(data.metrics.items()))
    facts = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in data.facts.items())
    pr = line_chart(
        {name: points for name, points in data.pr_curves.items()},
        title="precision-recall (validation)",
        x_label="recall",
        y_label="precision",
        y_range=(0.0, 1.0),
    )
    grid = "".join(_thumbnail(view, classes) for view in data.images)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(data.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 11px; color: #555; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 20px; }}
</style></head><body>
<h1>{escape(data.title)}</h1>
<table>{facts}</table>
<h2>Training</h2><div class="charts">{_loss_charts(data.history)}</div>
<h2>Accuracy</h2><table><tr><th>metric</th><th>value</th></tr>{rows}</table>
<div class="charts">{pr}</div>
<h2>Validation images</h2>
<p>green: ground truth; coloured: predictions with confidence.</p>
<div class="grid">{grid or "<p>no validation images</p>"}</div>
</body></html>
"""

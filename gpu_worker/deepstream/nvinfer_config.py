"""nvinfer config + labels file for a published model, refusing every known mismatch.

Generated from the model manifest (classes in channel order, input dims), the ONNX itself (input
and output names, head channels) and, when given, the engine manifest (precision, dims, batch
range). The traps of the original setup (labels or `num-detected-classes` that disagree with the
trained classes, engine dims that disagree with the training resolution, an engine of another
precision or without the output names) raise `DeepStreamConfigError` instead of writing a config.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.deepstream.clustering import ClassClustering, clustering_from_spec
from gpu_worker.engines.base import ENGINE_FILE, write_atomic
from gpu_worker.engines.onnx_io import OnnxSignature, read_signature
from gpu_worker.errors import UserError
from gpu_worker.files import sha256_file
from peoplenet_contracts import EngineManifest, ModelManifest, Precision

NVINFER_CONFIG_FILE = "config_infer_primary_peoplenet.txt"
LABELS_FILE = "labels_peoplenet.txt"
NET_SCALE_FACTOR = "0.0039215697906911373"  # 1/255: PeopleNet takes pixel/255, no mean
NETWORK_MODE = {Precision.FP32: 0, Precision.INT8: 1, Precision.FP16: 2}
MODEL_FILES = ("model_int8.onnx", "model.onnx")  # preferred order when no engine names its source
SPEC_FILE = "experiment_spec.txt"


class DeepStreamConfigError(UserError):
    """The model, its labels and its engine disagree; no config was written."""


@dataclass(frozen=True)
class DeepStreamFiles:
    config: Path
    labels: Path
    model_file: Path  # the ONNX nvinfer can rebuild from, beside the config
    network_mode: int
    classes: tuple[str, ...]


def _labels(model_dir: Path, manifest: ModelManifest) -> list[str]:
    path = model_dir / "labels.txt"
    if not path.is_file():
        return list(manifest.classes)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _model_file(model_dir: Path, manifest: ModelManifest, engine: EngineManifest | None) -> Path:
    candidates = [model_dir / name for name in MODEL_FILES if (model_dir / name).is_file()]
    if not candidates:
        raise DeepStreamConfigError(f"{model_dir} holds neither of {', '.join(MODEL_FILES)}")
    if engine is not None:
        for path in candidates:
            if sha256_file(path) == engine.source_model_sha256:
                return path
        raise DeepStreamConfigError(
            f"the engine was built from a model with sha256 {engine.source_model_sha256[:16]}..., "
            f"which is none of {[p.name for p in candidates]} in {model_dir}"
        )
    if engine is None and (model_dir / "model_int8.onnx").is_file():
        return model_dir / "model_int8.onnx"
    return candidates[-1]


def check_consistency(
    manifest: ModelManifest,
    labels: list[str],
    signature: OnnxSignature,
    engine: EngineManifest | None,
    batch_size: int,
) -> list[str]:
    """Every disagreement between labels, classes, ONNX heads, dims and engine (empty when none)."""
    problems: list[str] = []
    classes = list(manifest.classes)
    if [c.lower() for c in labels] != [c.lower() for c in classes]:
        problems.append(f"labels {labels} differ from the trained classes {classes} (channel order)")
    cov, bbox = signature.channels("cov"), signature.channels("bbox")
    if cov != len(classes):
        problems.append(f"the coverage head has {cov} channels for {len(classes)} classes")
    if bbox != 4 * len(classes):
        problems.append(f"the bbox head has {bbox} channels, expected 4 x {len(classes)}")
    dims = signature.input_chw()
    if dims != tuple(manifest.input_dims):
        problems.append(f"the ONNX takes {dims} (C, H, W) but the model was trained at {tuple(manifest.input_dims)}")
    if engine is None:
        return problems
    if engine.model_version != manifest.model_version:
        problems.append(f"the engine is for model {engine.model_version}, not {manifest.model_version}")
    if tuple(engine.input_dims) != tuple(manifest.input_dims):
        problems.append(
            f"the engine takes {tuple(engine.input_dims)} but the model was trained at {manifest.input_dims}"
        )
    if engine.input_name != signature.input.name:
        problems.append(f"the engine's input is {engine.input_name!r}, the ONNX's {signature.input.name!r}")
    needed = {signature.output("cov").name, signature.output("bbox").name}
    if missing := needed - set(engine.output_names):
        problems.append(f"the engine lacks outputs {sorted(missing)}")
    if not engine.min_batch <= batch_size <= engine.max_batch:
        problems.append(f"batch-size {batch_size} is outside the engine's range {engine.min_batch}..{engine.max_batch}")
    return problems


def render_config(
    *,
    classes: list[str],
    dims: tuple[int, int, int],
    signature: OnnxSignature,
    model_file: str,
    precision: Precision,
    engine_file: str | None,
    batch_size: int,
    gpu_id: int,
    clustering: dict[int, ClassClustering],
) -> str:
    outputs = [signature.output("cov").name, signature.output("bbox").name]
    lines = [
        f"# Generated by peoplenet-retrain for {len(classes)} classes: {', '.join(classes)}. Do not edit:",
        "# the agent regenerates it with every model so labels, classes, dims and precision agree.",
        "[property]",
        f"gpu-id={gpu_id}",
        f"net-scale-factor={NET_SCALE_FACTOR}",
        "model-color-format=0",  # RGB
        f"onnx-file={model_file}",
    ]
    if engine_file is not None:
        lines.append(f"model-engine-file={engine_file}")
    lines += [
        f"labelfile-path={LABELS_FILE}",
        f"infer-dims={';'.join(str(d) for d in dims)}",
        f"batch-size={batch_size}",
        f"network-mode={NETWORK_MODE[precision]}",
        f"num-detected-classes={len(classes)}",
        f"output-blob-names={';'.join(outputs)}",
        "network-type=0",  # detector: nvinfer's built-in DetectNet_v2 parser finds 'cov' and 'bbox'
        "process-mode=1",
        "interval=0",
        "gie-unique-id=1",
        "maintain-aspect-ratio=1",  # training letterboxes: scale to fit...
        "symmetric-padding=0",  # ...and pad right/bottom
        "cluster-mode=2",  # NMS
    ]
    for index in range(len(classes)):
        lines += ["", f"[class-attrs-{index}]", *clustering.get(index, ClassClustering()).lines()]
    return "\n".join(lines) + "\n"


def write_deepstream_config(
    model_dir: Path,
    out_dir: Path,
    engine_manifest: EngineManifest | None = None,
    *,
    manifest: ModelManifest | None = None,
    spec: Path | None = None,
    batch_size: int | None = None,
    gpu_id: int = 0,
) -> DeepStreamFiles:
    """Write the nvinfer config and labels (and the ONNX, when out_dir is another folder) to out_dir."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if manifest is None:
        path = model_dir / "manifest.json"
        if not path.is_file():
            raise DeepStreamConfigError(f"{model_dir} is not a published model folder: no manifest.json")
        manifest = ModelManifest.from_json(path.read_text())
    labels = _labels(model_dir, manifest)
    model_file = _model_file(model_dir, manifest, engine_manifest)
    signature = read_signature(model_file)
    batch = batch_size if batch_size is not None else (engine_manifest.opt_batch if engine_manifest else 1)
    problems = check_consistency(manifest, labels, signature, engine_manifest, batch)
    if problems:
        raise DeepStreamConfigError(
            f"refusing to write a DeepStream config for {manifest.model_version}: " + "; ".join(problems)
        )
    if engine_manifest is not None:
        precision = engine_manifest.precision
    else:
        precision = Precision.INT8 if signature.has_qdq else Precision.FP16
    spec = spec or (model_dir / SPEC_FILE if (model_dir / SPEC_FILE).is_file() else None)
    clustering = clustering_from_spec(spec, list(manifest.classes)) if spec else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != model_dir.resolve():
        partial = out_dir / f".{model_file.name}.partial"
        shutil.copyfile(model_file, partial)
        os.replace(partial, out_dir / model_file.name)
    text = render_config(
        classes=labels, dims=tuple(manifest.input_dims), signature=signature, model_file=model_file.name,  # type: ignore[arg-type]
        precision=precision, engine_file=ENGINE_FILE if engine_manifest else None, batch_size=batch,
        gpu_id=gpu_id, clustering=clustering,
    )  # fmt: skip
    write_atomic(out_dir / LABELS_FILE, ("\n".join(labels) + "\n").encode())
    write_atomic(out_dir / NVINFER_CONFIG_FILE, text.encode())
    return DeepStreamFiles(
        config=out_dir / NVINFER_CONFIG_FILE,
        labels=out_dir / LABELS_FILE,
        model_file=out_dir / model_file.name,
        network_mode=NETWORK_MODE[precision],
        classes=tuple(labels),
    )

"""Shared test helpers: a tiny DetectNet_v2-shaped ONNX, a published model, test-double tools."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

from gpu_worker.engines.platform import PlatformFacts
from gpu_worker.pipeline.channels import move_channel
from gpu_worker.pipeline.layout import model_manifest_key, model_prefix
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import FileDigest, ModelManifest

CLASSES = ["person", "bag", "face"]
DIMS = (3, 32, 48)  # tiny, but a multiple of the stride 16 like 544x960

SPEC = textwrap.dedent(
    """
    postprocessing_config {
      target_class_config { key: "person" value { clustering_config {
        coverage_threshold: 0.005 nms_iou_threshold: 0.45 nms_confidence_threshold: 0.3
        minimum_bounding_box_height: 20 clustering_algorithm: NMS } } }
      target_class_config { key: "face" value { clustering_config {
        coverage_threshold: 0.1 nms_iou_threshold: 0.6 minimum_bounding_box_height: 4 } } }
    }
    """
)


def make_detectnet_onnx(path: Path, num_classes: int = 3, dims: tuple[int, int, int] = DIMS, qdq: bool = False) -> Path:
    """input_1:0 [N,C,H,W] -> output_cov/Sigmoid:0 [N,K,H/16,W/16], output_bbox/BiasAdd:0 [N,4K,H/16,W/16]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, h, w = dims
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(num_classes, c, 16, 16)).astype("float32"), "w_cov"),
        numpy_helper.from_array(rng.normal(size=(4 * num_classes, c, 16, 16)).astype("float32"), "w_bbox"),
        numpy_helper.from_array(np.zeros(4 * num_classes, dtype="float32"), "b_bbox"),
    ]
    nodes = []
    x = "input_1:0"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.02, dtype="float32"), "q_scale"),
            numpy_helper.from_array(np.array(0, dtype="int8"), "q_zero"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", [x, "q_scale", "q_zero"], ["x_q"]),
            helper.make_node("DequantizeLinear", ["x_q", "q_scale", "q_zero"], ["x_dq"]),
        ]
        x = "x_dq"
    nodes += [
        helper.make_node("Conv", [x, "w_cov"], ["cov_logits"], strides=[16, 16]),
        helper.make_node("Sigmoid", ["cov_logits"], ["output_cov/Sigmoid:0"]),
        helper.make_node("Conv", [x, "w_bbox", "b_bbox"], ["output_bbox/BiasAdd:0"], strides=[16, 16]),
    ]
    graph = helper.make_graph(
        nodes,
        "detectnet_tiny",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", c, h, w])],
        [
            helper.make_tensor_value_info(
                "output_cov/Sigmoid:0", TensorProto.FLOAT, ["N", num_classes, h // 16, w // 16]
            ),
            helper.make_tensor_value_info(
                "output_bbox/BiasAdd:0", TensorProto.FLOAT, ["N", 4 * num_classes, h // 16, w // 16]
            ),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _digest(folder: Path, name: str) -> FileDigest:
    data = (folder / name).read_bytes()
    return FileDigest(path=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def make_model_dir(
    folder: Path,
    version: str,
    *,
    classes: list[str] | None = None,
    labels: list[str] | None = None,
    head_classes: int | None = None,
    dims: tuple[int, int, int] = DIMS,
    qdq: bool = False,
    spec: bool = True,
) -> ModelManifest:
    """A published-model folder: model.onnx (+ model_int8.onnx), labels.txt, spec, manifest.json."""
    classes = classes or list(CLASSES)
    folder.mkdir(parents=True, exist_ok=True)
    make_detectnet_onnx(folder / "model.onnx", head_classes or len(classes), dims)
    if qdq:
        make_detectnet_onnx(folder / "model_int8.onnx", head_classes or len(classes), dims, qdq=True)
    (folder / "labels.txt").write_text("\n".join(labels or [c.capitalize() for c in classes]) + "\n")
    if spec:
        (folder / "experiment_spec.txt").write_text(SPEC)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest = ModelManifest(
        model_version=version,
        source_job=f"job-{version}",
        classes=classes,
        input_dims=dims,
        files=[_digest(folder, n) for n in names],
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    return manifest


def publish(store: ObjectStore, folder: Path, version: str, channel: str = "production") -> None:
    """Upload like the publish stage: files, manifest.json last, then move the channel."""
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != "manifest.json":
            store.upload_file(path, model_prefix(version) + path.name)
    store.put_bytes(model_manifest_key(version), (folder / "manifest.json").read_bytes(), if_none_match=True)
    move_channel(store, channel, version, f"job-{version}")


TOOL = """#!{python}
import json, os, sys, time
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
print("&&&& RUNNING TensorRT.trtexec [TensorRT v{banner}] # trtexec " + " ".join(args), flush=True)
time.sleep({delay})
if {fail}:
    print("[E] Error[4]: could not parse the model", flush=True)
    sys.exit(1)
out = None
for i, a in enumerate(args):
    if a.startswith("--saveEngine="):
        out = a.split("=", 1)[1]
    if a == "-e":
        out = args[i + 1]
if out and {write}:
    with open(out, "wb") as f:
        f.write(("engine built by a test double: " + " ".join(args)).encode())
print("&&&& PASSED", flush=True)
"""


def make_tool(
    bin_dir: Path,
    name: str,
    log: Path,
    *,
    banner: str = "8502",
    delay: float = 0.0,
    fail: bool = False,
    write: bool = True,
) -> Path:
    """An executable test double of trtexec / tao-converter: records argv as a JSON line, writes the engine."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(
        TOOL.format(python=sys.executable, log=str(log), banner=banner, delay=delay, fail=fail, write=write)
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def facts(
    cc: str = "8.7",
    trt: str = "8.5.2.2",
    arch: str = "aarch64",
    trtexec: Path | None = None,
    tao_converter: Path | None = None,
) -> PlatformFacts:
    return PlatformFacts(
        cpu_arch=arch,
        gpu_name=f"test GPU sm{cc}",
        compute_capability=cc,
        cuda_version="11.4.315",
        tensorrt_version=trt,
        trtexec_path=os.fspath(trtexec) if trtexec else None,
        tao_converter_path=os.fspath(tao_converter) if tao_converter else None,
    )

"""Build our DetectNet_v2 model file from other weights, matching layers by graph structure.

Sources: a TFLite DetectNet_v2 (NVIDIA PeopleNet converted from NGC's ONNX), an ONNX DetectNet_v2 (TAO
5 export, NGC's decrypted PeopleNet, plain or QDQ), or our own model file. A graph that does not
match the DetectNet_v2 ResNet template raises `GraphMismatchError` (a `UserError`) saying where.

    imported = import_weights(Path("peoplenet.tflite"))
    imported.save("peoplenet.pt")
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from gpu_worker.errors import UserError
from gpu_worker.importers.build import PEOPLENET_CLASSES, ImportedModel, build_model, resolve_classes
from gpu_worker.importers.graph import DataflowGraph, GraphMismatchError
from gpu_worker.importers.structure import MatchedNetwork, match_detectnet

__all__ = [
    "PEOPLENET_CLASSES",
    "GraphMismatchError",
    "ImportedModel",
    "SourceFormat",
    "detect_format",
    "import_weights",
    "match_detectnet",
    "read_graph",
]


class SourceFormat(StrEnum):
    TFLITE = "tflite"
    ONNX = "onnx"
    NATIVE = "native"


def detect_format(path: Path) -> SourceFormat:
    """By content where it is unambiguous (TFLite's file identifier), else by suffix."""
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:8] == b"TFL3":
        return SourceFormat.TFLITE
    if path.suffix.lower() == ".onnx":
        return SourceFormat.ONNX
    if path.suffix.lower() in (".pt", ".pth"):
        return SourceFormat.NATIVE
    raise UserError(f"{path}: unknown weights format; expected .tflite, .onnx, or a peoplenet-retrain .pt model file")


def read_graph(path: Path, source_format: SourceFormat) -> DataflowGraph:
    if source_format is SourceFormat.TFLITE:
        from gpu_worker.importers.tflite_reader import read_tflite

        return read_tflite(path)
    if source_format is SourceFormat.ONNX:
        from gpu_worker.importers.onnx_reader import read_onnx

        return read_onnx(path)
    raise ValueError(f"{source_format} has no graph to read")


def import_weights(source: str | Path, classes: list[str] | None = None) -> ImportedModel:
    """Our DetectNetV2 (eval mode) holding the weights of `source`, with class names and input size."""
    path = Path(source)
    source_format = detect_format(path)
    if source_format is SourceFormat.NATIVE:
        from gpu_worker.importers.native import read_native

        return read_native(path, classes)
    matched: MatchedNetwork = match_detectnet(read_graph(path, source_format))
    names = resolve_classes(matched.plan.num_classes, classes, path.name)
    return ImportedModel(build_model(matched), names, matched.input_hw, str(source_format), extra={"source": path.name})

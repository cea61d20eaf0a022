"""INT8 for TensorRT by explicit quantisation: a QDQ ONNX calibrated on training images.

onnxruntime's static quantiser writes QuantizeLinear/DequantizeLinear pairs with the settings
TensorRT's explicit-quantisation path accepts: symmetric int8 (every zero point 0), per-channel
weights (axis 0), float weights behind a Q/DQ pair, float biases, input and outputs kept float.
Q/DQ sit only where TensorRT's explicit quantisation needs them: before every conv's input and
weights (bias, residual add and ReLU6 are the conv's epilogue in TensorRT). Activations are calibrated
on N training images letterboxed exactly as at inference, one image at a time (memory does not grow
with N). The two head convs (coverage, bbox: 1x1, a few output channels, negligible compute) stay
float, weights and input: their int8 weights shifted the coverage logits and biased coverage upwards.
On the real PeopleNet (bench/int8_calibration.py, coco128-kitti/val) these two choices took INT8 from
+0.008..+0.014 AP50 of fp32 to 0.000, and the coverage error at live cells from 0.027 to 0.012.

A quantisation-aware-trained model (training/qat.py) is not calibrated: `export_int8` writes its
learned activation amax as the scales (`quantize_qdq(activation_amax=...)`), so the QDQ graph is the
network QAT trained. Weight scales are max|w| / 127 per channel in both.

`write_calibration_cache` also writes the legacy TensorRT calibration cache (`trtexec --calib`,
`tao-converter -c`) from the same calibration; see its docstring for how faithful it is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from gpu_worker.errors import UserError

DEFAULT_CALIBRATION_IMAGES = 64
DEFAULT_OP_TYPES = ("Conv",)
DEFAULT_TRT_VERSION = "8601"  # TensorRT 8.6.1, as in TAO 5 deploy; the header must name the reader's version


class CalibrationMethod(StrEnum):
    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"
    QAT = "qat"  # activation scales from quantisation-aware training, not calibrated


@dataclass(frozen=True)
class Int8Result:
    onnx: Path
    num_calibration_images: int
    method: CalibrationMethod
    activation_scales: dict[str, float]  # activation tensor -> scale (amax / 127)


class LetterboxCalibrationReader:
    """onnxruntime CalibrationDataReader over image files, letterboxed like inference (RGB / 255)."""

    def __init__(self, images: Sequence[Path], input_name: str, input_hw: tuple[int, int]) -> None:
        self.images = list(images)
        self.input_name = input_name
        self.input_hw = input_hw
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self._range = (0, len(self.images))

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        from gpu_worker.training.letterbox import load_image_letterboxed

        height, width = self.input_hw
        for path in self.images[self._range[0] : self._range[1]]:
            image, _ = load_image_letterboxed(path, width, height)
            x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)[None] / 255.0
            yield {self.input_name: x}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        """The window onnxruntime calibrates next (`CalibStridedMinMax`): bounds memory to a few images."""
        self._range = (start_index, end_index)
        self._iter = None


def _input_of(model: Any) -> tuple[str, tuple[int, int]]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(inputs) != 1 or len(dims) != 4 or not dims[2] or not dims[3]:
        raise UserError("INT8 export needs an ONNX with one [N, 3, H, W] image input of fixed H and W")
    return inputs[0].name, (int(dims[2]), int(dims[3]))


def _head_output_nodes(model: Any) -> list[str]:
    """Names of the nodes producing graph outputs and the convs feeding them (kept float at the output)."""
    outputs = {o.name for o in model.graph.output}
    producers = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    for output in outputs:
        node = producers[output]
        names.append(node.name)
        if node.op_type == "Sigmoid" and node.input[0] in producers:
            names.append(producers[node.input[0]].name)
    return names


def _first_conv(model: Any) -> str:
    """The conv reading the image input (3 input channels)."""
    name, _ = _input_of(model)
    return next(n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] == name)


def conv_input_tensors(model: Any) -> dict[str, str]:
    """Our conv layer name -> the ONNX tensor its Conv node reads (export_onnx names nodes `/<conv>/Conv`)."""
    found: dict[str, str] = {}
    for node in model.graph.node:
        parts = node.name.strip("/").split("/")
        if node.op_type == "Conv" and len(parts) == 2 and parts[1] == "Conv":
            found[parts[0]] = node.input[0]
    return found


def _scale_overrides(model: Any, activation_amax: dict[str, float], excluded: list[str]) -> dict[str, Any]:
    """onnxruntime TensorQuantOverrides fixing every quantised conv input's scale to amax / 127 (zero point 0)."""
    tensors = conv_input_tensors(model)
    quantised = {n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in excluded}
    overrides: dict[str, Any] = {}
    for conv, tensor in tensors.items():
        if f"/{conv}/Conv" not in quantised:
            continue
        if conv not in activation_amax:
            raise UserError(f"QAT model has no activation amax for conv {conv!r} (ONNX tensor {tensor!r})")
        scale = np.array(np.float64(activation_amax[conv]) / 127.0, dtype=np.float32)
        previous = overrides.get(tensor)
        if previous is not None and previous[0]["scale"] != scale:
            raise UserError(f"convs reading {tensor!r} have different QAT amax; one Q/DQ pair cannot serve both")
        overrides[tensor] = [{"scale": scale, "zero_point": np.array(0, dtype=np.int8)}]
    if len(tensors) != sum(1 for n in model.graph.node if n.op_type == "Conv"):
        raise UserError("cannot map every Conv node of the ONNX to a conv layer; export it with export_onnx")
    return overrides


class _ConstantReader:
    """One all-zeros input: onnxruntime calibrates anyway, but every quantised tensor has a fixed scale."""

    def __init__(self, input_name: str, input_hw: tuple[int, int]) -> None:
        self._feed = {input_name: np.zeros((1, 3, *input_hw), dtype=np.float32)}
        self._done = False

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._done:
            return None
        self._done = True
        return self._feed

    def rewind(self) -> None:
        self._done = False

    def __len__(self) -> int:
        return 1

    def set_range(self, start_index: int, end_index: int) -> None:
        self._done = start_index >= 1


def quantize_qdq(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration_images: Sequence[Path],
    *,
    activation_amax: dict[str, float] | None = None,
    method: CalibrationMethod | None = None,
    percentile: float = 99.999,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
    float_first_conv: bool = False,
    float_heads: bool = True,
    quantize_outputs: bool = False,
    extra_options: dict[str, Any] | None = None,
) -> Int8Result:
    """Write a QDQ INT8 copy of `fp32_onnx` calibrated on `calibration_images`.

    `method` None: MINMAX when every activation is bounded (ReLU6 as Clip: the range is [0, 6] and
    min/max finds it), else PERCENTILE (plain ReLU: unbounded, clip rare outliers).
    `op_types`: node types whose inputs get Q/DQ (outputs too with `quantize_outputs`);
    `float_first_conv` leaves the 3-channel input conv in float; `float_heads` leaves the
    coverage/bbox convs in float (module docstring);
    `extra_options` override onnxruntime's quantiser options (used by bench/int8_calibration.py).
    `activation_amax` ({conv layer name: amax}, from QAT): every conv input's scale is amax / 127 and
    nothing is calibrated (`calibration_images` may be empty); `method` is then CalibrationMethod.QAT.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod as OrtMethod
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not calibration_images and activation_amax is None:
        raise UserError("INT8 calibration needs at least one training image")
    source = Path(fp32_onnx)
    model = onnx.load(str(source))
    input_name, input_hw = _input_of(model)
    heads = _head_output_nodes(model)
    if activation_amax is not None:
        method = CalibrationMethod.QAT
    elif method is None:
        bounded = not any(n.op_type == "Relu" for n in model.graph.node)
        method = CalibrationMethod.MINMAX if bounded else CalibrationMethod.PERCENTILE
    ort_method = {
        CalibrationMethod.MINMAX: OrtMethod.MinMax,
        CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        CalibrationMethod.ENTROPY: OrtMethod.Entropy,
        CalibrationMethod.QAT: OrtMethod.MinMax,  # runs on one blank image; every scale is overridden
    }[method]
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "AddQDQPairToWeight": True,  # float weights + Q/DQ: what TensorRT's ONNX parser expects
        "QuantizeBias": False,  # TensorRT takes float biases
        "DedicatedQDQPair": False,
        # Default: Q/DQ only on conv inputs and weights, TensorRT's placement (bias, residual add and
        # ReLU6 run in the conv's epilogue); quantising conv/add outputs too doubled the error.
        "OpTypesToExcludeOutputQuantization": [] if quantize_outputs else list(op_types),
        "CalibMovingAverage": False,
        "CalibPercentile": percentile,
        "ForceQuantizeNoInputCheck": False,
        "CalibStridedMinMax": 1,  # calibrate image by image: all activations of many images do not fit in RAM
        **(extra_options or {}),
    }
    excluded: list[str] = []
    if float_first_conv:
        excluded.append(_first_conv(model))
    if float_heads:
        excluded += [n.name for n in model.graph.node if n.name in heads and n.op_type == "Conv"]
    reader: Any = LetterboxCalibrationReader(calibration_images, input_name, input_hw)
    if activation_amax is not None:
        extra["TensorQuantOverrides"] = _scale_overrides(model, activation_amax, excluded)
        reader = _ConstantReader(input_name, input_hw)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(source),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=excluded,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=ort_method,
        extra_options=extra,
    )
    _strip_output_qdq(out, heads)
    scales = activation_scales(out)
    if activation_amax is not None:
        expected = {t: float(o[0]["scale"]) for t, o in extra["TensorQuantOverrides"].items()}
        if scales != expected:  # a Q/DQ the overrides missed would hold a scale from the blank image
            raise UserError(f"QAT scales not applied to every quantised tensor: {sorted(set(scales) ^ set(expected))}")
    return Int8Result(out, 0 if activation_amax is not None else len(calibration_images), method, scales)


def export_int8(
    model_path: str | Path,
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration_images: Sequence[Path],
) -> Int8Result:
    """INT8 QDQ of `fp32_onnx` (exported from `model_path`): QAT scales when the model file has them
    (quantisation-aware trained), else calibrated on `calibration_images` (minmax for ReLU6)."""
    from gpu_worker.detection.checkpoint import load_model
    from gpu_worker.training.qat import qat_metadata

    _, meta = load_model(model_path)
    entry = qat_metadata(meta)
    if entry is None:
        return quantize_qdq(fp32_onnx, out_path, calibration_images)
    amax = {str(k): float(v) for k, v in entry["activation_amax"].items()}
    return quantize_qdq(fp32_onnx, out_path, calibration_images, activation_amax=amax)


def _strip_output_qdq(path: Path, head_nodes: list[str]) -> None:
    """Remove the Q/DQ pairs after the head nodes so coverage and bbox leave the graph unquantised.

    onnxruntime renames a quantised graph output's producer to `<name>_QuantizeLinear_Input`; the
    original output name is restored on the producer.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    outputs = {o.name for o in graph.output}
    for node in [n for n in graph.node if n.name in head_nodes]:
        tensor = node.output[0]
        quants = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor]
        for q in quants:
            for dq in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]]:
                # Readers of the dequantised tensor read the float tensor again.
                target = dq.output[0] if dq.output[0] in outputs else tensor
                for other in graph.node:
                    for i, name in enumerate(other.input):
                        if name in (dq.output[0], tensor):
                            other.input[i] = target
                node.output[0] = target
                graph.node.remove(dq)
            graph.node.remove(q)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def activation_scales(qdq_path: str | Path) -> dict[str, float]:
    """Scale of every quantised activation tensor (input of a QuantizeLinear that is not a weight)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq_path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scales: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            scales[node.input[0]] = float(np.asarray(constants[node.input[1]]).reshape(-1)[0])
    return scales


def zero_point_violations(qdq_path: str | Path) -> list[str]:
    """Q/DQ nodes whose zero point is not all zeros or not int8 (TensorRT needs symmetric int8)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq_path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero = constants.get(node.input[2]) if len(node.input) > 2 else None
        if zero is None or zero.dtype != np.int8 or np.any(zero != 0):
            problems.append(f"{node.name}: zero point {None if zero is None else (zero.dtype, zero.ravel()[:4])}")
    return problems


def write_calibration_cache(
    fp32_onnx: str | Path, scales: dict[str, float], out_path: str | Path, trt_version: str = DEFAULT_TRT_VERSION
) -> Path:
    """TensorRT's implicit-quantisation cache (`TRT-<ver>-EntropyCalibration2`, `name: <hex scale>`).

    Keys are the fp32 ONNX's value names, which TensorRT's ONNX parser gives its ITensors: the graph
    input and every node output. Values are big-endian hex of float32 scales (amax / 127) from the
    same calibration as the QDQ model; an activation (Relu/Clip) output shares the scale of its
    input's producer, as in TensorRT's fused conv+activation. Tensors the calibration did not see
    (e.g. head outputs) are omitted, and TensorRT keeps those layers in higher precision.
    Not verified against a real TensorRT here (none can be installed); the header names the
    TensorRT version that reads it (`trt_version`, e.g. 8601 for 8.6.1).
    """
    import onnx

    model = onnx.load(str(fp32_onnx))
    names = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]
    lines = [f"TRT-{trt_version}-EntropyCalibration2"]
    producers = {out: node for node in model.graph.node for out in node.output}
    for name in names:
        scale = scales.get(name)
        if scale is None:
            # A pre-activation tensor takes its activation's scale (they fuse in TensorRT).
            follower = next((n for n in model.graph.node if n.input and n.input[0] == name), None)
            if follower is not None and follower.op_type in ("Relu", "Clip"):
                scale = scales.get(follower.output[0])
        if scale is None or (name not in producers and name != _input_of(model)[0]):
            continue
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    out = Path(out_path)
    out.write_text("\n".join(lines) + "\n")
    return out

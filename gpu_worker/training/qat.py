"""Quantisation-aware training (TAO's `training_config { enable_qat: true }`) that mirrors the INT8 export.

The fake quantisation is exactly what `export/int8.py::quantize_qdq` writes and TensorRT executes:
- batch norm folded into the conv first (the QDQ export and TensorRT quantise the folded kernel);
- weights of every backbone conv per output channel, symmetric, scale max|w| / 127 (onnxruntime's
  symmetric QInt8 range is [-127, 127]), zero point 0;
- activations per tensor at every backbone conv's input (the image input of conv1 included), scale
  amax / 127, zero point 0, saturated to [-128, 127] as QuantizeLinear does; a block's conv_1 and
  projection shortcut read one tensor, hence one quantiser (the QDQ graph has one Q/DQ pair there);
- the heads (`output_cov`, `output_bbox`) float, input and weights; conv outputs, adds and ReLU6 float
  (TensorRT's conv epilogue);
- round half to even (torch.round, ONNX QuantizeLinear), straight-through gradient inside the range.

Activation amax starts at the calibrated max |x| over training images (onnxruntime's minmax) and is
then learned (LSQ: the rounding residual is the gradient of the step size) in its own optimiser group
with a larger learning rate, since Adam moves a parameter by about the learning rate per step and amax
is O(1..6) while weights are O(0.01). The model file stores the float weights (BN folded) and the amax
of every conv input in `extra["qat"]`, so resume and export use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gpu_worker.detection.channel_plan import HEAD_LAYERS, ChannelPlan
from gpu_worker.detection.checkpoint import ModelMeta, model_payload
from gpu_worker.detection.model import Activation, DetectNetV2, bn_name

QAT_KEY = "qat"  # model-file extra: {"activation_amax": {conv: amax}, "learn_amax": bool}
SCALE_DIVISOR = 127.0  # symmetric int8 scale = amax / 127 (onnxruntime ActivationSymmetric/WeightSymmetric)
QMIN, QMAX = -128, 127  # QuantizeLinear's int8 saturation
AMAX_LR_SCALE = 200.0  # amax's learning rate / the weights' (module docstring)
MIN_AMAX = 1e-4


def fake_quantize(x: Tensor, scale: Tensor) -> Tensor:
    """clamp(round(x / scale), -128, 127) * scale, in float32, with straight-through gradients.

    Gradient to x: 1 inside the int8 range, 0 where saturated. Gradient to scale (when it requires
    grad): round(v) - v inside, the saturation bound outside (LSQ).
    """
    v = x.float() / scale
    q = torch.clamp(v + (torch.round(v) - v).detach(), QMIN, QMAX)
    return q * scale


def weight_scales(weight: Tensor) -> Tensor:
    """Per output channel max |w| / 127 (float64 then float32, as onnxruntime); 1.0 for all-zero channels."""
    amax = weight.detach().abs().flatten(1).amax(dim=1).double()
    scale = (amax / SCALE_DIVISOR).float()
    return torch.where(scale < torch.finfo(torch.float32).tiny, torch.ones_like(scale), scale)


def fake_quantize_weight(weight: Tensor) -> Tensor:
    """Per-output-channel symmetric int8 fake quantisation of a conv kernel [O, I, kh, kw]."""
    return fake_quantize(weight, weight_scales(weight).view(-1, 1, 1, 1))


def input_quantisers(plan: ChannelPlan) -> dict[str, str]:
    """Backbone conv -> the conv whose quantiser its input uses (a projection shares its block's conv_1's)."""
    owners = {"conv1": "conv1"}
    for block in plan.blocks:
        owners[block.conv_1] = block.conv_1
        owners[block.conv_2] = block.conv_2
        if block.projection:
            owners[block.conv_shortcut] = block.conv_1
    return owners


def fold_batch_norm(model: DetectNetV2) -> DetectNetV2:
    """A use_batch_norm=False copy with every BN (eval statistics) folded into its conv; same eval outputs."""
    if not model.use_batch_norm:
        return model
    folded = DetectNetV2(model.plan, use_batch_norm=False, activation=model.activation)
    state: dict[str, Tensor] = {}
    for name, conv in model.conv_layers():
        assert conv.bias is not None  # every DetectNetV2 conv has a bias
        weight, bias = conv.weight.detach().double(), conv.bias.detach().double()
        if name not in HEAD_LAYERS:
            bn = model.get_submodule(bn_name(name))
            assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
            factor = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            weight = weight * factor.view(-1, 1, 1, 1)
            bias = (bias - bn.running_mean.double()) * factor + bn.bias.detach().double()
        state[f"{name}.weight"], state[f"{name}.bias"] = weight.float().cpu(), bias.float().cpu()
    folded.load_state_dict(state)
    return folded.train(model.training)


class QatDetectNetV2(DetectNetV2):
    """A batch-norm-free DetectNetV2 whose backbone convs see int8 fake-quantised inputs and weights.

    `fake_quant = False` runs it as the plain float model. Its state dict adds `act_amax.<conv>`.
    """

    def __init__(
        self, plan: ChannelPlan, activation: Activation | str, amax: Mapping[str, float], learn_amax: bool = True
    ) -> None:
        super().__init__(plan, use_batch_norm=False, activation=activation)
        self.quantiser_of = input_quantisers(plan)
        self.learn_amax = learn_amax
        self.fake_quant = True
        self.act_amax = nn.ParameterDict(
            {
                key: nn.Parameter(torch.tensor(float(amax[key])), requires_grad=learn_amax)
                for key in sorted(set(self.quantiser_of.values()))
            }
        )

    @classmethod
    def from_float(cls, model: DetectNetV2, amax: Mapping[str, float], learn_amax: bool = True) -> QatDetectNetV2:
        """Wrap a model (BN folded first) with the given activation amax per conv input."""
        folded = fold_batch_norm(model)
        qat = cls(folded.plan, folded.activation, amax, learn_amax)
        qat.load_float_state_dict(folded.state_dict())
        qat.to(next(model.parameters()).device).train(model.training)
        return qat

    def load_float_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load a plain use_batch_norm=False state dict (all but the amax, which stay as they are)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("act_amax.") for k in missing):
            raise RuntimeError(f"QAT model state: missing {missing}, unexpected {unexpected}")

    def _conv_bn(self, name: str, x: Tensor) -> Tensor:
        conv = self.get_submodule(name)
        assert isinstance(conv, nn.Conv2d)
        key = self.quantiser_of.get(name)
        if key is None or not self.fake_quant:
            return conv(x)
        amax = self.act_amax[key].clamp_min(MIN_AMAX)
        x = fake_quantize(x, amax / SCALE_DIVISOR).to(x.dtype)
        weight = fake_quantize_weight(conv.weight).to(conv.weight.dtype)
        return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding)

    def activation_amax(self) -> dict[str, float]:
        """Amax of every backbone conv's input (a projection repeats its conv_1's)."""
        return {conv: float(self.act_amax[key].detach().clamp_min(MIN_AMAX)) for conv, key in self.quantiser_of.items()}

    def float_state_dict(self) -> dict[str, Tensor]:
        """The plain (use_batch_norm=False) DetectNetV2 state dict: without the amax."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("act_amax.")}


@torch.no_grad()
def calibrate_amax(model: DetectNetV2, images: npt.NDArray[np.uint8], batch_size: int = 8) -> dict[str, float]:
    """Max |x| at every backbone conv's input over `images` (uint8 [N, H, W, 3], letterboxed): minmax."""
    if len(images) == 0:
        raise ValueError("QAT calibration needs at least one image")
    amax: dict[str, float] = {}
    hooks = []
    for name, conv in model.conv_layers():
        if name not in HEAD_LAYERS:

            def record(_m: nn.Module, inputs: tuple[Tensor, ...], name: str = name) -> None:
                amax[name] = max(amax.get(name, 0.0), float(inputs[0].detach().abs().amax()))

            hooks.append(conv.register_forward_pre_hook(record))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)  # writable copy
            model(chunk.permute(0, 3, 1, 2).float().div_(255.0))  # [B, 3, H, W] RGB / 255, as inference
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return amax


def prepare_qat(model: DetectNetV2, images: npt.NDArray[np.uint8], learn_amax: bool = True) -> QatDetectNetV2:
    """Fold BN, calibrate activation amax on `images`, return the QAT model (same device, mode)."""
    folded = fold_batch_norm(model).to(next(model.parameters()).device)
    return QatDetectNetV2.from_float(folded, calibrate_amax(folded, images), learn_amax)


def qat_metadata(meta: ModelMeta) -> dict[str, Any] | None:
    """The QAT entry of a model file's metadata, or None for a float-trained model."""
    entry = meta.extra.get(QAT_KEY)
    return dict(entry) if isinstance(entry, Mapping) else None


def model_from_payload(payload: Mapping[str, Any], meta: ModelMeta) -> DetectNetV2:
    """The model in a model-file payload: a QatDetectNetV2 when its metadata holds QAT amax."""
    entry = qat_metadata(meta)
    if entry is None:
        model = DetectNetV2(meta.plan, use_batch_norm=meta.use_batch_norm, activation=meta.activation)
        model.load_state_dict(payload["state_dict"])
        return model
    amax = {str(k): float(v) for k, v in entry["activation_amax"].items()}
    qat = QatDetectNetV2(meta.plan, meta.activation, amax, bool(entry.get("learn_amax", True)))
    qat.load_float_state_dict(payload["state_dict"])
    return qat


def payload_for(
    model: DetectNetV2, classes: list[str] | tuple[str, ...], input_hw: tuple[int, int], extra: dict[str, Any]
) -> dict[str, Any]:
    """`model_payload`, for a QAT model with the float weights (BN folded) and its amax in `extra["qat"]`."""
    if not isinstance(model, QatDetectNetV2):
        return model_payload(model, classes, input_hw, extra)
    qat = {"activation_amax": model.activation_amax(), "learn_amax": model.learn_amax}
    payload = model_payload(model, classes, input_hw, {**extra, QAT_KEY: qat})
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("act_amax.")}
    return payload


def optimizer_groups(model: DetectNetV2) -> list[dict[str, Any]]:
    """Adam parameter groups: the trainable weights, plus learned amax at AMAX_LR_SCALE x the rate."""
    amax = [p for n, p in model.named_parameters() if n.startswith("act_amax.") and p.requires_grad]
    ids = {id(p) for p in amax}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": weights}]
    if amax:
        groups.append({"params": amax, "lr_scale": AMAX_LR_SCALE})
    return groups

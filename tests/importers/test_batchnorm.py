"""Re-created batch norm keeps a folded model's function (eval exactly, train mode on the calibration batch)."""

from __future__ import annotations

import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.importers.batchnorm import recreate_batch_norm


def _folded_model() -> DetectNetV2:
    torch.manual_seed(0)
    model = DetectNetV2(ChannelPlan.standard(10, 3), use_batch_norm=False, activation="relu6")
    with torch.no_grad():
        for _, conv in model.conv_layers():
            conv.bias.uniform_(-0.5, 0.5)  # folded BN leaves non-zero biases everywhere
    return model.eval()


def test_recreated_batch_norm_is_the_identity_in_eval_mode() -> None:
    model = _folded_model()
    images = torch.rand(6, 3, 64, 96)
    rebuilt = recreate_batch_norm(model, images).eval()
    assert rebuilt.use_batch_norm and rebuilt.activation == model.activation
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        cov, bbox = model(x)
        cov2, bbox2 = rebuilt(x)
    torch.testing.assert_close(cov2, cov, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bbox2, bbox, atol=1e-4, rtol=1e-4)
    bn = rebuilt.bn_conv1
    assert float(bn.running_var.min()) >= 0.0
    torch.testing.assert_close(bn.weight, torch.sqrt(bn.running_var + bn.eps))
    torch.testing.assert_close(bn.bias, bn.running_mean)


def test_train_mode_on_the_calibration_batch_matches_the_folded_model() -> None:
    """Batch statistics equal the calibration statistics, so training starts from the same function."""
    model = _folded_model()
    images = torch.rand(4, 3, 64, 96)
    rebuilt = recreate_batch_norm(model, images).train()
    with torch.no_grad():
        cov, bbox = model(images)
        cov2, bbox2 = rebuilt(images)
    torch.testing.assert_close(cov2, cov, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(bbox2, bbox, atol=1e-3, rtol=1e-3)


def test_a_model_with_batch_norm_is_returned_unchanged() -> None:
    model = DetectNetV2(ChannelPlan.standard(10, 3), use_batch_norm=True)
    assert recreate_batch_norm(model, torch.rand(1, 3, 32, 32)) is model

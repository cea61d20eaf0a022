"""TAO-style pruning: valid shapes, exactly the filters the threshold implies, union across residual adds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import load_model, save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.errors import UserError
from gpu_worker.pruning import Equalization, Normalizer, PruneSettings, prune_model, select_filters
from gpu_worker.pruning.criteria import filter_norms, normalize, retained_count


def _model(use_batch_norm: bool, seed: int = 0) -> DetectNetV2:
    torch.manual_seed(seed)
    plan = ChannelPlan.standard(18, 2)
    widths = {name: w // 2 for name, w in plan.widths.items()}
    widths.update(output_cov=2, output_bbox=8)
    model = DetectNetV2(ChannelPlan(18, True, 2, widths), use_batch_norm=use_batch_norm).eval()
    rng = np.random.default_rng(seed)
    for name, conv in model.conv_layers():  # spread filter norms like a trained model's
        _set_norms(model, name, rng.uniform(0.02, 1.0, conv.weight.shape[0]))
    return model


def _set_norms(model: DetectNetV2, layer: str, norms: np.ndarray) -> None:
    conv = getattr(model, layer)
    with torch.no_grad():
        flat = conv.weight.flatten(1)
        conv.weight.copy_(
            (flat / flat.norm(dim=1, keepdim=True) * torch.from_numpy(norms).float()[:, None]).view_as(conv.weight)
        )


@pytest.mark.parametrize("use_batch_norm", [True, False])
@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9])
def test_pruned_model_is_valid_and_smaller(use_batch_norm: bool, threshold: float) -> None:
    model = _model(use_batch_norm)
    result = prune_model(model, PruneSettings(threshold=threshold, granularity=4, min_num_filters=4))
    result.model.plan.validate()
    assert result.params_after < result.params_before
    with torch.no_grad():
        cov, bbox = result.model(torch.rand(1, 3, 64, 96))
    assert cov.shape == (1, 2, 4, 6) and bbox.shape == (1, 8, 4, 6)
    for name, conv in result.model.conv_layers():
        assert conv.weight.shape[0] == result.model.plan.widths[name]
        assert conv.weight.shape[1] == result.model.plan.in_channels(name)
    assert result.model.plan.widths["output_cov"] == 2 and result.model.plan.widths["output_bbox"] == 8


def test_removes_exactly_what_the_threshold_implies() -> None:
    model = _model(False)
    width = model.plan.widths["block_1a_conv_1"]  # not residual-tied
    norms = np.linspace(0.05, 1.0, width)  # normalised by the max (1.0): these are the statistics
    _set_norms(model, "block_1a_conv_1", norms)
    for threshold, granularity, min_filters in ((0.5, 1, 1), (0.5, 8, 1), (0.99, 1, 5), (0.0, 8, 16)):
        kept = select_filters(model, PruneSettings(threshold, granularity=granularity, min_num_filters=min_filters))
        above = int(np.sum(norms > threshold))
        expected = max(min(min_filters, width), above)
        expected = min(width, -(-expected // granularity) * granularity)  # rounded UP to the granularity
        assert len(kept["block_1a_conv_1"]) == expected
        # The strongest filters are the ones kept.
        assert set(kept["block_1a_conv_1"]) == set(np.argsort(-norms, kind="stable")[:expected])


def test_union_keeps_residual_tied_layers_equal() -> None:
    model = _model(True)
    group = next(g for g in model.plan.residual_groups() if "block_2a_conv_2" in g)
    width = model.plan.widths[group[0]]
    strong_a = np.where(np.arange(width) % 2 == 0, 1.0, 0.01)  # even filters strong in one layer
    strong_b = np.where(np.arange(width) % 4 <= 1, 1.0, 0.01)  # half of them overlapping
    _set_norms(model, group[0], strong_a)
    _set_norms(model, group[1], strong_b)
    settings = PruneSettings(threshold=0.5, granularity=1, min_num_filters=1)
    kept = select_filters(model, settings)
    assert np.array_equal(kept[group[0]], kept[group[1]])
    assert set(kept[group[0]]) == set(np.flatnonzero((strong_a > 0.5) | (strong_b > 0.5)))
    inter = select_filters(model, PruneSettings(0.5, Normalizer.MAX, Equalization.INTERSECTION, 1, 1))
    assert set(inter[group[0]]) == set(np.flatnonzero((strong_a > 0.5) & (strong_b > 0.5)))
    result = prune_model(model, settings)
    result.model.plan.validate()  # tied widths equal


def test_excluded_layers_and_heads_keep_every_filter() -> None:
    model = _model(False)
    settings = PruneSettings(threshold=0.95, granularity=1, min_num_filters=1, excluded_layers=("block_3a_conv_1",))
    kept = select_filters(model, settings)
    for name in ("block_3a_conv_1", "output_cov", "output_bbox"):
        assert len(kept[name]) == model.plan.widths[name]
    assert len(kept["block_3b_conv_1"]) < model.plan.widths["block_3b_conv_1"]
    with pytest.raises(UserError, match="not in the model"):
        select_filters(model, PruneSettings(excluded_layers=("no_such_layer",)))


def test_l2_normalizer_matches_tao() -> None:
    stat = np.array([1.0, 2.0, 2.0])
    np.testing.assert_allclose(normalize(stat, Normalizer.L2), stat / 3.0 * 3)
    np.testing.assert_allclose(normalize(stat, Normalizer.MAX), stat / 2.0)
    assert retained_count(np.array([0.1, 0.2, 0.9]), 0.15, granularity=8, min_num_filters=1) == 3
    assert filter_norms(np.ones((2, 3, 1, 1))).tolist() == pytest.approx([3**0.5, 3**0.5])


def test_pruned_filters_equal_zeroed_filters_without_compensation() -> None:
    """Slicing is exact: the pruned model computes what the original does with those filters zeroed."""
    model = _model(False)
    result = prune_model(model, PruneSettings(threshold=0.8, granularity=1, min_num_filters=1), compensate=False)
    with torch.no_grad():
        for name, kept in result.kept.items():
            removed = np.setdiff1d(np.arange(model.plan.widths[name]), kept)
            getattr(model, name).weight[removed] = 0
            getattr(model, name).bias[removed] = 0
        x = torch.rand(1, 3, 64, 96)
        for a, b in zip(model(x), result.model(x), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_prune_cli_prints_params(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpu_worker.cli import app

    src = save_model(tmp_path / "m.pt", _model(True), ["person", "bag"], (64, 96))
    out = tmp_path / "pruned.pt"
    result = CliRunner().invoke(
        app,
        [
            "prune",
            "-m",
            str(src),
            "-o",
            str(out),
            "-pth",
            "0.6",
            "-eq",
            "union",
            "-pg",
            "4",
            "-nf",
            "4",
            "-el",
            "conv1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "parameters before" in result.output and "parameters after" in result.output
    pruned, meta = load_model(out)
    assert meta.extra["pruning"]["params_after"] < meta.extra["pruning"]["params_before"]
    assert pruned.plan.widths["conv1"] == 32
    kept = meta.extra["kept_channels"]
    assert all(len(kept[name]) == width for name, width in pruned.plan.widths.items())


def test_prune_cli_keep_fraction_cuts_every_layer_alike(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpu_worker.cli import app

    model = _model(True)
    src = save_model(tmp_path / "m.pt", model, ["person", "bag"], (64, 96))
    out = tmp_path / "pruned.pt"
    args = ["prune", "-m", str(src), "-o", str(out), "--keep-fraction", "0.5", "-pg", "1", "-nf", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    pruned, _ = load_model(out)
    for name, width in model.plan.widths.items():
        expected = width if name in ("output_cov", "output_bbox") else (width + 1) // 2
        assert pruned.plan.widths[name] == expected, name

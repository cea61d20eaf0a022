"""End-to-end training on real photos: overfitting, exact resume, the non-finite-loss guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gpu_worker.detection.checkpoint import load_model
from gpu_worker.detection.losses import CostConfig, DetectNetLoss
from gpu_worker.detection.rasterizer import RasterizerConfig
from gpu_worker.specs.info import target_class_names
from gpu_worker.training.data import BatchLoader, prepare_cache
from gpu_worker.training.engine import NonFiniteLossError, StepOptions, Trainer, evaluate, make_optimizer
from gpu_worker.training.schedule import SoftStartAnnealing
from gpu_worker.training.train import train


@pytest.mark.slow
def test_tiny_model_overfits_four_images(
    overfit_data: Path, make_spec: Any, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=120)
    spec.training_config.checkpoint_interval = 1000
    lines: list[str] = []
    result = train(spec, tmp_path / "run", base_model=narrow_model, device="cpu", progress=lines.append)
    assert result.epochs_run == 120 and not result.stopped
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 10
    assert any("epoch 120/120" in line for line in lines)
    model, meta = load_model(result.model_path)
    prepared = prepare_cache(spec, tmp_path / "run" / "data_cache")
    assert prepared.val is not None
    metrics = evaluate(model, BatchLoader(prepared.val, batch_size=4), spec, list(meta.classes), torch.device("cpu"))
    assert metrics.ap("person") >= 0.9, metrics.to_dict()


def test_resume_continues_identically(overfit_data: Path, make_spec: Any, narrow_model: Path, tmp_path: Path) -> None:
    spec = make_spec(overfit_data, epochs=4, batch_size=2)
    cache = tmp_path / "cache"
    whole = train(
        spec, tmp_path / "whole", base_model=narrow_model, device="cpu", progress=lambda _: None, cache_dir=cache
    )

    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] == 2

    run = tmp_path / "split"
    first = train(
        spec,
        run,
        base_model=narrow_model,
        device="cpu",
        progress=lambda _: None,
        should_stop=stop_after_two,
        cache_dir=cache,
    )
    assert first.stopped and first.epochs_done == 2 and not (run / "model.pt").exists()
    assert (run / "checkpoints" / "epoch_002.pt").is_file()
    second = train(spec, run, resume=True, device="cpu", progress=lambda _: None, cache_dir=cache)
    assert second.epochs_run == 2 and second.epochs_done == 4
    a = torch.load(whole.model_path, weights_only=True)["state_dict"]
    b = torch.load(second.model_path, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert [h["loss"] for h in whole.history] == [h["loss"] for h in second.history]
    assert len(json.loads((run / "history.json").read_text())) == 4


def test_nonfinite_losses_are_skipped_then_abort(
    overfit_data: Path, make_spec: Any, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1)
    names = target_class_names(spec)
    model, _ = load_model(narrow_model)
    optimizer = make_optimizer(model, 1e-3, 1e-8, 0.9, 0.999)
    trainer = Trainer(
        model,
        optimizer,
        DetectNetLoss(CostConfig.from_spec(spec)),
        RasterizerConfig.from_spec(spec, names),
        SoftStartAnnealing.from_spec(spec),
        10,
        torch.device("cpu"),
        StepOptions(max_nonfinite_in_a_row=3, log_every=1),
    )
    boxes, classes = [torch.tensor([[10.0, 10, 100, 120]])], [torch.tensor([0])]
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    bad = torch.full((1, 3, 160, 256), float("nan"))
    losses = trainer.train_step(bad, boxes, classes, None)
    assert not torch.isfinite(losses[0])
    for key, value in before.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)  # the step was skipped
    assert trainer.check_finite() == 1
    trainer.train_step(torch.rand(1, 3, 160, 256), boxes, classes, None)  # a good step resets the streak
    trainer.train_step(bad, boxes, classes, None)
    trainer.train_step(bad, boxes, classes, None)
    trainer.check_finite()
    trainer.train_step(bad, boxes, classes, None)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        trainer.check_finite()

"""`peoplenet-retrain train -e SPEC -r RESULTS`: native PyTorch DetectNet_v2 training (TAO spec files)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        spec: Path = typer.Option(..., "-e", "--experiment-spec", help="TAO DetectNet_v2 experiment spec file."),
        results: Path = typer.Option(
            ..., "-r", "--results-dir", help="Folder for model.pt, checkpoints/, history.json."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from the newest checkpoint in RESULTS/checkpoints."
        ),
        base_model: Path | None = typer.Option(
            None, "--base-model", help="Start from this model file (overrides model_config.pretrained_model_file)."
        ),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override training_config.num_epochs."),
        cache_dir: Path | None = typer.Option(
            None, "--cache-dir", help="Prepared-data cache (default RESULTS/data_cache)."
        ),
        compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (CUDA)."),
    ) -> None:
        """Train (or retrain) DetectNet_v2 natively with PyTorch; no TAO container, no NGC key."""
        from gpu_worker.training.train import train

        result = train(
            spec,
            results,
            resume=resume,
            base_model=base_model,
            device=device,
            max_epochs=epochs,
            cache_dir=cache_dir,
            compile_model=compile_model,
        )
        if result.stopped:
            typer.echo(f"stopped after epoch {result.epochs_done}; checkpoint {result.checkpoint_path} (use --resume)")
        else:
            final = result.history[-1]["loss"] if result.history else float("nan")
            typer.echo(f"model: {result.model_path} ({result.epochs_done} epochs, final loss {final:.5f})")

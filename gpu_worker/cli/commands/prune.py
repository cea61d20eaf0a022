"""`peoplenet-retrain prune -m MODEL -o OUT -pth 0.1 ...`: TAO-style pruning of our model file."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune_cmd(
        model: Path = typer.Option(..., "-m", "--model", help="Model file to prune"),
        output: Path = typer.Option(..., "-o", "--output_file", help="Pruned model file to write"),
        threshold: float = typer.Option(0.1, "-pth", "--pruning_threshold", help="Normalised-norm threshold"),
        equalization: str = typer.Option(
            "union", "-eq", "--equalization_criterion", help="union | intersection | arithmetic_mean | geometric_mean"
        ),
        granularity: int = typer.Option(8, "-pg", "--pruning_granularity", help="Kept filters, a multiple of this"),
        min_filters: int = typer.Option(16, "-nf", "--min_num_filters", help="Keep at least this many per layer"),
        normalizer: str = typer.Option("max", "-n", "--normalizer", help="max | L2"),
        excluded: list[str] = typer.Option(
            [], "-el", "--excluded_layers", help="Layers to leave whole (repeat, or comma-separated)"
        ),
        keep_fraction: float | None = typer.Option(
            None, "--keep-fraction", help="Not TAO: every layer keeps this share of its filters (ignores -pth)"
        ),
    ) -> None:
        """Remove filters whose normalised L2 norm is at or below the threshold (TAO's rules)."""
        from gpu_worker.detection.checkpoint import load_model, save_model
        from gpu_worker.errors import UserError
        from gpu_worker.pruning import Equalization, Normalizer, PruneSettings, parse_layers, prune_model
        from gpu_worker.training.hints import KEPT_CHANNELS_KEY

        try:
            settings = PruneSettings(
                threshold=threshold,
                normalizer=Normalizer(normalizer),
                equalization=Equalization(equalization),
                granularity=granularity,
                min_num_filters=min_filters,
                excluded_layers=parse_layers(excluded),
                keep_fraction=keep_fraction,
            )
        except ValueError as exc:
            raise UserError(f"prune: {exc}") from exc
        source, meta = load_model(model)
        result = prune_model(source, settings)
        extra = {
            **meta.extra,
            "pruned_from": model.name,
            "pruning": {
                "threshold": threshold,
                "normalizer": str(settings.normalizer),
                "equalization": str(settings.equalization),
                "granularity": granularity,
                "min_num_filters": min_filters,
                "excluded_layers": list(settings.excluded_layers),
                "keep_fraction": keep_fraction,
                "params_before": result.params_before,
                "params_after": result.params_after,
            },
            KEPT_CHANNELS_KEY: result.kept_channels(),
        }
        save_model(output, result.model, meta.classes, meta.input_hw, extra=extra)
        typer.echo(f"parameters before: {result.params_before:,}")
        typer.echo(f"parameters after:  {result.params_after:,} (ratio {result.ratio:.3f}, pruned model / original)")
        typer.echo(f"wrote {output}")

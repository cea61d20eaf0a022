"""`peoplenet-retrain spec check SPEC`: parse and validate a TAO spec file, print what it sets."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    spec_app = typer.Typer(help="TAO spec files (DetectNet_v2 experiment and dataset_convert).", no_args_is_help=True)

    @spec_app.command("check")
    def check(spec: Path = typer.Argument(..., help="Spec file (protobuf text format, as TAO reads it)")) -> None:
        """Recognise, parse and validate a spec; print classes, input size, backbone and data paths.

        Exits 2 with `file:line:col: message` when the spec does not parse or is invalid.
        """
        from gpu_worker.specs import (
            SpecKind,
            backbone,
            data_paths,
            detect_spec_kind,
            input_size,
            load_dataset_convert_spec,
            load_experiment_spec,
            target_class_names,
        )

        kind = detect_spec_kind(spec)
        if kind is SpecKind.DATASET_CONVERT:
            convert = load_dataset_convert_spec(spec)
            kitti = convert.kitti_config
            mapping = ", ".join(f"{k} -> {v}" for k, v in sorted(convert.target_class_mapping.items()))
            typer.echo(f"{spec}: valid dataset_convert spec")
            typer.echo(
                f"  KITTI root:   {kitti.root_directory_path} ({kitti.image_dir_name}/, {kitti.label_dir_name}/)"
            )
            typer.echo(f"  images:       *{kitti.image_extension}")
            typer.echo(
                f"  partitions:   {kitti.num_partitions} ({kitti.partition_mode}), val_split {kitti.val_split:g}%, "
                f"{kitti.num_shards} shards"
            )
            typer.echo(f"  class map:    {mapping or '(none)'}")
            return
        experiment = load_experiment_spec(spec)
        width, height = input_size(experiment)
        paths = data_paths(experiment)
        if paths.validation is not None:
            validation = paths.validation
        elif paths.validation_fold is not None:
            validation = f"validation_fold {paths.validation_fold}"
        else:
            validation = "(none)"
        classes = target_class_names(experiment)
        typer.echo(f"{spec}: valid experiment spec")
        typer.echo(f"  classes:      {', '.join(f'{i}:{name}' for i, name in enumerate(classes))} (channel order)")
        channels = experiment.augmentation_config.preprocessing.output_image_channel or 3
        typer.echo(f"  input:        {width}x{height} (W x H), {channels} channels")
        typer.echo(f"  backbone:     {backbone(experiment)}")
        typer.echo(f"  train data:   {', '.join(paths.train)}")
        typer.echo(f"  validation:   {validation}")
        typer.echo(f"  pretrained:   {experiment.model_config.pretrained_model_file or '(none: from scratch)'}")
        typer.echo(
            f"  training:     {experiment.training_config.num_epochs} epochs, "
            f"batch {experiment.training_config.batch_size_per_gpu}"
        )

    app.add_typer(spec_app, name="spec")

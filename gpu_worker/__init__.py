"""The GPU worker side of peoplenet-retrain: CLI, pipeline, adapters, training, export, engines, agent."""

__version__ = "0.1.0"

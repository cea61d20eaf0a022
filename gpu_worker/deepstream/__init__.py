"""DeepStream nvinfer config generation for published PeopleNet models."""

from __future__ import annotations

from gpu_worker.deepstream.clustering import ClassClustering, clustering_from_spec
from gpu_worker.deepstream.nvinfer_config import (
    LABELS_FILE,
    NETWORK_MODE,
    NVINFER_CONFIG_FILE,
    DeepStreamConfigError,
    DeepStreamFiles,
    check_consistency,
    write_deepstream_config,
)

__all__ = [
    "LABELS_FILE",
    "NETWORK_MODE",
    "NVINFER_CONFIG_FILE",
    "ClassClustering",
    "DeepStreamConfigError",
    "DeepStreamFiles",
    "check_consistency",
    "clustering_from_spec",
    "write_deepstream_config",
]

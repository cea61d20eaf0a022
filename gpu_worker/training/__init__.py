"""Native PyTorch training of DetectNet_v2: data pipeline (data, augment, letterbox), engine, checkpoints."""

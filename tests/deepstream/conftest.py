from __future__ import annotations

import sys
from pathlib import Path

# Shared helpers (tiny DetectNet ONNX, published model folder, test-double tools) live in tests/engines.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines"))

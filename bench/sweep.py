"""What the GPU sweeps share: arguments, and running named variants until a deadline with results after each."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import quality as Q


def sweep_parser(doc: str | None, name: str, variants: Mapping[str, Any], model_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Q.ROOT.parent / "shared"))
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--work", default=f"/tmp/{name}")
    parser.add_argument("--results", default=str(Q.ROOT / "bench" / "results" / f"{name}.json"))
    parser.add_argument("--variants", default=",".join(variants))
    parser.add_argument("--deadline", type=float, default=480.0, help="start no variant after this many seconds")
    return parser


def run_sweep(names: str, deadline: float, results: dict[str, Any], out: Path, run: Callable[[str], Any]) -> None:
    """`run(name)` for each comma-separated name while the process is younger than `deadline` seconds; the
    results file is rewritten after every variant, so a run cut short keeps what it measured."""
    results.setdefault("variants", {})
    for name in names.split(","):
        if time.perf_counter() - Q.STARTED > deadline:
            results["variants"][name] = "skipped: past --deadline"
        else:
            results["variants"][name] = run(name)
            print(name, json.dumps(results["variants"][name]), flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

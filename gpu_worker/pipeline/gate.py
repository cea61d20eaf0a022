"""Quality gate: the new model against the production model, on the same validation data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def decide(
    new_metrics: dict[str, float],
    production_metrics: dict[str, float] | None,
    min_ap_change: dict[str, float],
) -> GateDecision:
    """Pass when, for every class in the policy, AP(new) - AP(production) >= its minimum change.

    A class the new model was not evaluated on fails the gate: silence must not pass as success.
    """
    if production_metrics is None:
        return GateDecision(True, "no production model yet: first model becomes production")
    failures: list[str] = []
    notes: list[str] = []
    for cls, minimum in sorted(min_ap_change.items()):
        key = f"AP/{cls}"
        if key not in new_metrics:
            failures.append(f"{key} missing from the new model's metrics")
            continue
        before = production_metrics.get(key, 0.0)
        change = new_metrics[key] - before
        line = f"{key} {before:.4f} -> {new_metrics[key]:.4f} (change {change:+.4f}, minimum {minimum:+.4f})"
        (notes if change >= minimum else failures).append(line)
    if failures:
        return GateDecision(False, "gate failed: " + "; ".join(failures))
    return GateDecision(True, "gate passed: " + "; ".join(notes))

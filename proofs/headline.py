"""The headline of a certificate or a study: one number, its interval and the rule it is read
against, in structured fields (the report formats them; nothing is joined into prose)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HEADLINE_LIMIT = 150
"""The longest headline text the report prints, in characters."""
CONFIDENCE = 0.95


def number_text(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits; ``inf``, ``-inf``, ``nan`` and ``?`` (none)."""
    if value is None:
        return "?"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class Headline:
    """One number that carries a result: ``metric`` (what it is, in a few words), ``value``, its
    interval ``[low, high]`` (95% unless ``confidence`` says otherwise; none for an exact
    quantity) and ``threshold``, the rule it is read against (e.g. "> 0 by 2 SE")."""

    metric: str
    value: float
    low: float | None = None
    high: float | None = None
    threshold: str = ""
    confidence: float = CONFIDENCE

    def text(self, digits: int = 3) -> str:
        """``metric value [low, high] (threshold)``, within :data:`HEADLINE_LIMIT` characters."""
        text = f"{self.metric} {number_text(self.value, digits)}"
        if self.low is not None and self.high is not None:
            text += f" [{number_text(self.low, digits)}, {number_text(self.high, digits)}]"
        if self.threshold:
            text += f" ({self.threshold})"
        return text if len(text) <= HEADLINE_LIMIT else text[: HEADLINE_LIMIT - 1] + "…"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "threshold": self.threshold,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Headline:
        def number(key: str) -> float | None:
            value = record.get(key)
            return None if value is None else float(value)

        return cls(
            str(record["metric"]),
            float(record["value"]) if record.get("value") is not None else math.nan,
            number("low"),
            number("high"),
            str(record.get("threshold", "")),
            float(record.get("confidence", CONFIDENCE)),
        )

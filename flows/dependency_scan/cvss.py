"""CVSS v3.x base scores from vector strings, for a severity rating when an advisory carries only
a vector (as the PyPA database does). Formulas from the CVSS v3.1 specification, section 7.
"""

from __future__ import annotations

import math

_ATTACK_VECTOR = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_ATTACK_COMPLEXITY = {"L": 0.77, "H": 0.44}
_PRIVILEGES = {"N": (0.85, 0.85), "L": (0.62, 0.68), "H": (0.27, 0.5)}  # (unchanged, changed)
_USER_INTERACTION = {"N": 0.85, "R": 0.62}
_IMPACT = {"H": 0.56, "L": 0.22, "N": 0.0}
_REQUIRED = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


def _round_up(value: float) -> float:
    """The specification's Roundup: smallest one-decimal number >= value, float-error safe."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def base_score(vector: str) -> float | None:
    """The base score of a `CVSS:3.x/AV:../...` vector, or None when it is not one."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in {"CVSS:3.0", "CVSS:3.1"}:
        return None
    metrics = dict(part.split(":", 1) for part in parts[1:] if ":" in part)
    if any(key not in metrics for key in _REQUIRED):
        return None
    try:
        changed = {"U": False, "C": True}[metrics["S"]]
        exploitability = (
            8.22
            * _ATTACK_VECTOR[metrics["AV"]]
            * _ATTACK_COMPLEXITY[metrics["AC"]]
            * _PRIVILEGES[metrics["PR"]][changed]
            * _USER_INTERACTION[metrics["UI"]]
        )
        confidentiality, integrity, availability = (_IMPACT[metrics[k]] for k in ("C", "I", "A"))
    except KeyError:
        return None
    iss = 1 - (1 - confidentiality) * (1 - integrity) * (1 - availability)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    total = impact + exploitability
    return _round_up(min(1.08 * total if changed else total, 10.0))


def rating(score: float) -> str:
    """Qualitative severity rating scale (CVSS v3.1 section 5)."""
    if score == 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"

"""docs/reference.md is generated from the code; it must match what the code says today."""

from __future__ import annotations

from api.settings import Settings
from scripts.generate_reference import REFERENCE, render


def test_reference_is_fresh() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/reference.md is stale: run `make reference`"
    )


def test_every_setting_is_described() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undescribed == [], "give each setting a docstring (it is its documentation)"

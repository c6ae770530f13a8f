"""docs/reference.md is generated from the code; it must match what the code says today."""

from __future__ import annotations

from scripts.generate_reference import REFERENCE, render, setting_descriptions


def test_reference_is_fresh() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/reference.md is stale: run `make reference`"
    )


def test_every_setting_is_described() -> None:
    undescribed = [name for name, text in setting_descriptions().items() if not text]
    assert undescribed == [], "give each setting a docstring (it is its documentation)"

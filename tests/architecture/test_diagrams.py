"""The code-layers picture and the ERD picture are what `make diagrams` draws today.

(Each stack's picture is checked in tests/infra/test_diagrams.py, on the plans built there.)
"""

from __future__ import annotations

from scripts.diagrams import ARCHITECTURE, ERD_SVG, ROOT, code_graph, erd_graph, svg


def test_code_layers_picture_is_fresh() -> None:
    path = ARCHITECTURE / "code-layers.svg"
    assert path.read_text(encoding="utf-8") == svg(code_graph()), "stale: run `make diagrams`"


def test_erd_picture_is_fresh() -> None:
    assert ERD_SVG.read_text(encoding="utf-8") == svg(erd_graph()), (
        f"{ERD_SVG.relative_to(ROOT)} is stale: run `make diagrams`"
    )

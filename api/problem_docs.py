"""OpenAPI documentation of problem+json error responses, for routes' `responses=`.

Every error the API answers is RFC 9457 problem details (api.errors); routes list the statuses
they can answer so that the schema says exactly what a client (or a conformance checker) will
see, content type included.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.errors import PROBLEM_CONTENT_TYPE


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; 422 adds `errors`, some problems add their own fields."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="422 only: where the request is invalid"
    )


# Inline rather than a `model=`: FastAPI would document a model under application/json.
_SCHEMA = ProblemDetails.model_json_schema()


def problem_responses(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`problem_responses(_401="not authenticated", _404="no subscription")` for `responses=`.

    Keys are `_<status>` (Python names cannot start with a digit).
    """
    return {
        int(name.removeprefix("_")): {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _SCHEMA}},
        }
        for name, description in descriptions.items()
    }

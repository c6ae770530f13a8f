"""JSON bodies parsed without letting their shape reach the server's error path.

`json.loads` recurses once per nesting level: a body of a few thousand `[` raises
RecursionError, which is not a ValueError, so code that guards a parse with `except
ValueError` answers 500 and logs a traceback per request. Every body the app or its
middleware parses by hand goes through `parse_json`, which refuses such bodies as invalid
(a ValueError) and caps nesting well below the interpreter's limit. (FastAPI's own body
parsing turns any parse exception into a 400 problem.)
"""

from __future__ import annotations

import json
from typing import Any

# Nothing this API accepts (a Stripe event included) comes close to this depth.
MAX_JSON_DEPTH = 64


class JSONBodyError(ValueError):
    """The body is not JSON, or nests deeper than MAX_JSON_DEPTH."""


def parse_json(body: bytes | str) -> Any:
    text = body.decode("utf-8") if isinstance(body, bytes) else body  # UnicodeError: ValueError
    try:
        document = json.loads(text)
    except RecursionError:
        raise JSONBodyError(f"JSON nesting is limited to {MAX_JSON_DEPTH} levels") from None
    # Counting brackets runs in C; only a body with enough of them to be too deep is walked.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _deeper_than(
        document, MAX_JSON_DEPTH
    ):
        raise JSONBodyError(f"JSON nesting is limited to {MAX_JSON_DEPTH} levels")
    return document


def _deeper_than(document: Any, limit: int) -> bool:
    """Iterative (an explicit stack), so the check itself cannot recurse too deeply."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False

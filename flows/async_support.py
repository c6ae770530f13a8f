"""Running the API's async services from the flows' synchronous code.

`asyncio.run` in the caller's thread would leave that thread without a current event loop
when it returns (it sets it to None), which breaks later code that relies on
`asyncio.get_event_loop()` — and it cannot be used at all where a loop is already running (an
async Prefect flow). A short-lived thread of its own avoids both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion on a new event loop in a new thread; return its result
    or raise its exception in the calling thread."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="flows-async")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]

"""AWS Lambda entry point: the same app behind Mangum.

Imported once per container; the engine and Redis client are created lazily on the first
request and kept, because Mangum runs the lifespan on every invocation.
"""

from __future__ import annotations

from mangum import Mangum

from api.logging_config import configure_logging
from api.main import create_app

configure_logging()
handler = Mangum(create_app(dispose_on_shutdown=False), lifespan="auto")

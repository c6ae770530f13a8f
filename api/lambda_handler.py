"""AWS Lambda entry point: the same app behind Mangum.

Imported once per container; the engine and Redis client are created lazily on the first
request and kept, because Mangum runs the lifespan on every invocation.

The cyclic garbage collector is off while the app is imported and built: the import
allocates hundreds of thousands of long-lived objects (modules, classes, schemas, routes),
and the collections they triggered walked them over and over, about a sixth of the cold
start's CPU. Nothing collectable is made meanwhile. Afterwards what was built is frozen out
of the collector's sight (as the lifespan does for servers) and collection resumes.
"""

from __future__ import annotations

import gc

gc.disable()

from mangum import Mangum  # noqa: E402 - imported with the collector off (see above)

from api.logging_config import configure_logging  # noqa: E402
from api.main import create_app  # noqa: E402

try:
    configure_logging()
    handler = Mangum(create_app(dispose_on_shutdown=False), lifespan="auto")
finally:
    gc.freeze()
    gc.enable()

"""Every domain's tables on one metadata, for Alembic, the ERD and the tests.

This module sits above the domains (it imports each one's models); domains never import it —
they declare their tables on api.metadata.
"""

from __future__ import annotations

# Domain tables register themselves on import: one line per domain.
import api.account.models
import api.auth.models
import api.billing.models
import api.observability.models
import api.payments.models  # noqa: F401
from api.metadata import metadata

__all__ = ["metadata"]

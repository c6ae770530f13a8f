"""The SQLModel metadata of every domain, for Alembic, the ERD and the tests.

Each domain's tables module is imported here so that `metadata` is complete wherever it is
used; a fixed naming convention keeps constraint names identical in models and migrations.
"""

from __future__ import annotations

from sqlmodel import SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Domain tables register themselves on import: one line per domain (sorted, as ruff wants;
# the order does not matter to the metadata).
import api.account.models  # noqa: E402
import api.auth.models  # noqa: E402
import api.billing.models  # noqa: E402
import api.observability.models  # noqa: E402
import api.payments.models  # noqa: E402, F401

metadata = SQLModel.metadata

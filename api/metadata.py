"""The one SQLModel metadata every table is declared on, with its constraint naming convention.

A fixed convention keeps constraint names identical in models and migrations. Each domain's
models module imports this first, so the convention is in force whichever module Python
imports first. Which tables exist is api.models' business, not this module's.
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

metadata = SQLModel.metadata

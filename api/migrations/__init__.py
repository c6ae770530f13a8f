"""Alembic migrations of the API's database (versions/); env.py reads DATABASE_URL."""

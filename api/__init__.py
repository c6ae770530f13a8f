"""Slipway API: FastAPI + SQLModel service (accounts, auth, rate limits, payments)."""

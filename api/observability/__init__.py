"""Metrics (docs/reference.md#metrics), their HTTP middleware and the /metrics endpoint."""

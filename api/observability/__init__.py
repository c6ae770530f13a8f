"""Metrics (CONTRACT.md section 5), their HTTP middleware and the /metrics endpoint."""

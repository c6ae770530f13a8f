"""Grafana dashboards (generated JSON in generated/) and Prometheus alert rules (alerts/)."""

"""Slipway's ops flows: backup, reconcile-payments, dependency-scan,
tech-debt.

Each flow is a package of plain functions (importable and tested without Prefect) plus a thin
`flow.py` that wraps the same steps as Prefect tasks. `python -m flows <name>` runs the plain
pipeline once; `python -m flows serve` serves the scheduled deployments of prefect.yaml.
"""

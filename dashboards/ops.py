"""Ops: backup age, reconciliation mismatches, open vulnerabilities and flow failures.

The series come from the flows' recorded runs, exported by every API instance alike
(docs/adr/0002-flow-metrics.md), hence `max` rather than `sum` across instances.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import Query, Row, Step, build_dashboard, stat_panel, time_series

UID = "slipway-ops"
BACKUP_MAX_AGE_SECONDS = 26 * 3600  # as in the BackupTooOld alert


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "Since the last successful backup",
                "Time since the backup flow last recorded a success. Backups run daily; the "
                "BackupTooOld alert fires after 26 h.",
                Query('time() - max(ops_flow_last_success_timestamp_seconds{flow="backup"})'),
                unit="s",
                steps=[Step(None, "green"), Step(BACKUP_MAX_AGE_SECONDS, "red")],
                no_value="never",
            ),
            stat_panel(
                "Reconciliation mismatches",
                "Payments whose state differed between Stripe and the database in the latest "
                "successful reconciliation.",
                Query("sum(max by (kind) (ops_reconciliation_mismatches))"),
                unit="short",
                steps=[Step(None, "green"), Step(1, "orange")],
                no_value="no run yet",
            ),
            stat_panel(
                "Critical vulnerabilities",
                "Unignored critical findings in the latest successful dependency scan.",
                Query('max(ops_vulnerabilities_open{severity="critical"})'),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
                no_value="no scan yet",
            ),
            stat_panel(
                "Flow failures, 24 h",
                "Flow runs that ended in failure (after their retries) over the last 24 hours.",
                Query('sum(max by (flow) (increase(ops_flow_runs_total{result="failure"}[24h])))'),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
            ),
        ],
    )


def _flows() -> Row:
    return Row(
        "Flows",
        [
            time_series(
                "Time since the last success, by flow",
                "backup runs daily, reconcile-payments hourly, dependency-scan daily, "
                "tech-debt weekly (prefect.yaml).",
                [
                    Query(
                        "time() - max by (flow) (ops_flow_last_success_timestamp_seconds)",
                        "{{flow}}",
                    )
                ],
                unit="s",
            ),
            time_series(
                "Runs per day, by flow and result",
                "Finished flow runs over the preceding 24 hours.",
                [
                    Query(
                        "max by (flow, result) (increase(ops_flow_runs_total[1d]))",
                        "{{flow}} {{result}}",
                    )
                ],
                unit="short",
            ),
            time_series(
                "Reconciliation mismatches by kind",
                "As found by the latest successful reconcile-payments run.",
                [Query("max by (kind) (ops_reconciliation_mismatches)", "{{kind}}")],
                unit="short",
            ),
            time_series(
                "Open vulnerabilities by severity",
                "As found by the latest successful dependency-scan run (ignored findings "
                "excluded).",
                [Query("max by (severity) (ops_vulnerabilities_open)", "{{severity}}")],
                unit="short",
                stacked=True,
            ),
        ],
    )


def build() -> Dashboard:
    return build_dashboard(
        UID,
        "Slipway / Ops",
        "Backups, payment reconciliation, dependency vulnerabilities and ops flow failures.",
        [_overview(), _flows()],
    )

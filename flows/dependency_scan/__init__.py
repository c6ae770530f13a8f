"""Dependency-scan flow: locked dependencies checked against OSV advisories (fetched when none
are on disk), reported as JSON, SARIF and Markdown."""

"""Developer tools run by make targets: the ERD, architecture diagrams, schema review."""

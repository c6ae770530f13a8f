"""Backup flow: `pg_dump -Fc` streamed to S3 with a JSON manifest, verified by a restore into a
scratch database."""

"""Local counterparts of what a deployed stack runs against, for `make infra-rehearse` and the
tests that run task definitions for real: PostgreSQL with TLS from a throwaway CA, moto, ..."""

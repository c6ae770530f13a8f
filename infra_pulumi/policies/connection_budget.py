"""How many connections an RDS PostgreSQL instance accepts, and whether a Lambda API fits in them.

Every Lambda instance opens its own connections, so the function's reserved concurrency times
the connections one instance may hold (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW) must fit in
the instance's max_connections, less the superuser reserve and room for everything else that
connects (a migration task, the secret rotation function, an operator's psql).

Without an explicit `max_connections` in the parameter group, RDS uses
LEAST(DBInstanceClassMemory / 9531392, 5000), where DBInstanceClassMemory is the instance's
memory less what RDS keeps for the OS and its own processes. That share is not published per
class; the estimate assumes RDS leaves at least 70% (about 78 connections on a 1 GiB class),
below what small and medium classes report (88-92%).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from infra_pulumi.policies.model import LAMBDA, RDS, Props, Resource, StackFacts

BYTES_PER_CONNECTION = 9_531_392
USABLE_MEMORY_SHARE = 0.7
MOST_CONNECTIONS = 5000
# superuser_reserved_connections (3) + rds.rds_superuser_reserved_connections (2)
RESERVED_CONNECTIONS = 5
OTHER_CLIENTS = 10
# The API's own defaults (api/settings.py) when the function does not set them.
APP_POOL_DEFAULTS = {"DATABASE_POOL_SIZE": 20, "DATABASE_MAX_OVERFLOW": 0}
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"

GIB = 1024**3
# Memory (GiB) per size: burstable classes (t3, t4g) from micro up; general purpose (m) and
# memory optimised (r) classes from large up, r with twice m's memory.
_BURSTABLE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_LARGE_MULTIPLES = {"large": 1, "xlarge": 2, "2xlarge": 4, "4xlarge": 8, "8xlarge": 16}
_CLASS = re.compile(r"^db\.([tmr])\d+[a-z]*\.(\w+)$")


def instance_memory_gib(instance_class: str) -> int | None:
    match = _CLASS.match(instance_class)
    if match is None:
        return None
    kind, size = match.groups()
    if kind == "t":
        return _BURSTABLE_GIB.get(size)
    multiple = _LARGE_MULTIPLES.get(size)
    return None if multiple is None else multiple * (8 if kind == "m" else 16)


def max_connections(database: Props, resources: Sequence[Resource]) -> int | None:
    """The instance's max_connections: its parameter group's, else RDS's default estimated."""
    for group in resources:
        if group.type == PARAMETER_GROUP and group.props.get("name") == database.get(
            "parameterGroupName"
        ):
            for parameter in group.props.get("parameters") or []:
                if parameter.get("name") == "max_connections":
                    return int(parameter["value"])
    memory = instance_memory_gib(str(database.get("instanceClass") or ""))
    if memory is None:
        return None
    return min(int(memory * GIB * USABLE_MEMORY_SHARE) // BYTES_PER_CONNECTION, MOST_CONNECTIONS)


def lambda_connection_budget(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    databases = {str(r.props.get("address")): r.props for r in resources if r.type == RDS}
    problems = []
    for function in (r for r in resources if r.type == LAMBDA):
        variables = (function.props.get("environment") or {}).get("variables") or {}
        database = databases.get(str(variables.get("DATABASE_HOST")))
        if database is None:
            continue  # not a client of this stack's database
        instances = int(function.props.get("reservedConcurrentExecutions") or -1)
        if instances < 1:
            problems.append(
                f"{function.name}: reserve its concurrency, or its instances can exhaust "
                "the database's connections"
            )
            continue
        per_instance = sum(int(variables.get(k) or v) for k, v in APP_POOL_DEFAULTS.items())
        limit = max_connections(database, resources)
        if limit is None:
            problems.append(
                f"{function.name}: unknown max_connections of {database.get('instanceClass')} "
                "(set max_connections in the parameter group)"
            )
            continue
        budget = limit - RESERVED_CONNECTIONS - OTHER_CLIENTS
        if instances * per_instance > budget:
            problems.append(
                f"{function.name}: {instances} instances x {per_instance} connections exceed "
                f"the {budget} of {database.get('instanceClass')} (max_connections {limit})"
            )
    return problems

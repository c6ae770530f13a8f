"""A local Redis Cluster for tests: three primaries, each with one replica, started from
Debian's `redis-server` in cluster mode and joined by `redis-cli --cluster create`, in a
temporary directory, on free ports. Tests may fail a primary over to its replica, kill a
primary outright, or move slots between primaries while the app keeps serving.

Every wait is bounded: a cluster that does not settle fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis

from tests.services import require_command

SETTLE_TIMEOUT_SECONDS = 30.0


@dataclass
class ClusterNode:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    _client: redis.Redis | None = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """One client per node (it reconnects by itself after a restart)."""
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)
        return self._client

    def log_tail(self) -> str:
        return self.log_path.read_text()[-2000:] if self.log_path.exists() else "(no log)"


@dataclass
class LocalRedisCluster:
    directory: Path
    primaries: int = 3
    # How long a primary may be unreachable before its replica takes over: short for the tests'
    # failovers; Redis's default (15 s) where load alone must never fail a node over.
    node_timeout_ms: int = 1000
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """REDIS_URL as an operator gives it: one node; the client discovers the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        server = require_command("redis-server", "redis-server")
        cli = require_command("redis-cli", "redis-tools")
        ports = _free_ports(self.primaries * 4)  # a client port and a bus port per node
        for index in range(self.primaries * 2):
            directory = self.directory / f"node-{index}"
            directory.mkdir()
            self.nodes.append(ClusterNode(ports[2 * index], ports[2 * index + 1], directory))
        for node in self.nodes:
            self._launch(server, node)
        for node in self.nodes:
            _wait(partial(_answers, node), f"redis-server on {node.port} did not start", node)
        addresses = [node.address for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=SETTLE_TIMEOUT_SECONDS,
        )  # fmt: skip
        self.wait_until_settled()

    def _launch(self, server: str, node: ClusterNode) -> None:
        command = [
            server, "--port", str(node.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-port", str(node.bus_port),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--dir", str(node.directory), "--save", "", "--appendonly", "no",
            "--logfile", str(node.log_path),
        ]  # fmt: skip
        node.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
            node.client().close()

    def kill(self, node: ClusterNode) -> None:
        if node.process is not None:
            node.process.kill()
            node.process.wait(timeout=10)
            node.process = None

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again: its nodes.conf makes it rejoin (as a replica if its
        replica was promoted meanwhile)."""
        self._launch(require_command("redis-server", "redis-server"), node)
        _wait(partial(_answers, node), f"redis-server on {node.port} did not restart", node)
        self.wait_until_settled()

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process is not None]

    def primary_nodes(self) -> list[ClusterNode]:
        return [node for node in self.running() if _role(node) == "master"]

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        """The running replica of `primary`, in sync with it."""
        for node in self.running():
            info = node.client().info("replication")
            if info.get("role") == "slave" and info.get("master_port") == primary.port:
                return node
        raise RuntimeError(f"primary {primary.port} has no running replica")

    def fail_over(self, primary: ClusterNode) -> ClusterNode:
        """`CLUSTER FAILOVER` on the primary's replica (the planned hand-over of a patch or a
        node replacement); returns the promoted node once every node agrees."""
        replica = self.replica_of(primary)
        replica.client().execute_command("CLUSTER", "FAILOVER")
        _wait(lambda: _role(replica) == "master", f"replica {replica.port} was not promoted")
        self.wait_until_settled()
        return replica

    def begin_migration(self, slots: list[int], source: ClusterNode, target: ClusterNode) -> None:
        """Resharding, first half: the slots are marked migrating and their keys moved with
        MIGRATE (as `redis-cli --cluster reshard` does); until `end_migration`, the source
        answers ASK for them and the target serves them only after ASKING."""
        source_id, target_id = _node_id(source), _node_id(target)
        from_source, to_target = source.client(), target.client()
        for slot in slots:
            to_target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            from_source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := from_source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                from_source.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )

    def end_migration(self, slots: list[int], source: ClusterNode, target: ClusterNode) -> None:
        """Resharding, second half: the target owns the slots; the source answers MOVED."""
        target_id = _node_id(target)
        others = [node for node in self.primary_nodes() if node not in (source, target)]
        for node in (target, source, *others):  # the order redis-cli uses
            for slot in slots:
                node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_until_settled()

    def wait_until_settled(self) -> None:
        """Every running node reports cluster_state:ok and every replica is in sync."""
        try:
            _wait(self._settled, "the Redis Cluster did not settle")
        except RuntimeError as exc:
            views = [node.client().cluster("NODES") for node in self.running()[:1]]
            raise RuntimeError(f"{exc}; as one node sees it: {views}") from None

    def _settled(self) -> bool:
        slot_maps = set()
        for node in self.running():
            client = node.client()
            if client.cluster("INFO").get("cluster_state") != "ok":
                return False
            replication = client.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
            slot_maps.add(_slot_map(client))
        return len(slot_maps) == 1  # every node agrees which primary owns which slots

    def error_replies(self, prefix: str) -> int:
        """How many error replies starting with `prefix` (MOVED, ASK, NOSCRIPT) the running
        nodes have sent since they started."""
        total = 0
        for node in self.running():
            stats = node.client().info("errorstats")
            total += int(stats.get(f"errorstat_{prefix}", {}).get("count", 0))
        return total

    def keys(self, pattern: str) -> dict[int, list[bytes]]:
        """Keys matching `pattern` on each running primary, by port."""
        return {
            node.port: sorted(node.client().scan_iter(match=pattern))
            for node in self.primary_nodes()
        }


def _free_ports(count: int) -> list[int]:
    """Distinct free ports: all probes stay bound until every port is chosen."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def _slot_map(client: redis.Redis) -> frozenset[tuple[int, int, int]]:
    """(first slot, last slot, primary's port) of every range, as this node sees it."""
    ranges = client.execute_command("CLUSTER", "SLOTS")
    return frozenset((first, last, primary[1]) for first, last, primary, *_ in ranges)


def _node_id(node: ClusterNode) -> str:
    node_id: bytes = node.client().execute_command("CLUSTER", "MYID")
    return node_id.decode()


def _role(node: ClusterNode) -> str:
    role: str = node.client().info("replication")["role"]
    return role


def _answers(node: ClusterNode) -> bool:
    try:
        return bool(node.client().ping())
    except redis.RedisError:
        return False


def _wait(condition: Callable[[], bool], failure: str, node: ClusterNode | None = None) -> None:
    """Poll `condition` until true; after SETTLE_TIMEOUT_SECONDS fail with `failure` (and the
    end of `node`'s log)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(failure + (f"; its log ends:\n{node.log_tail()}" if node else ""))
        time.sleep(0.05)

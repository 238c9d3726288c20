"""A throwaway 3-node RabbitMQ cluster of our own, for the quorum-queue drills (test_broker_cluster.py).

Three nodes on 127.0.0.1, `eye_c<N>_<random>@localhost`, each with its own AMQP port, distribution
port, config, data (mnesia) and log folders, all under one temporary folder; they share ONE epmd
(on a port of its own, ERL_EPMD_PORT) and ONE Erlang cookie (a shared HOME), so they can cluster,
and never meet the machine's node, its epmd or ~/.erlang.cookie. The nodes boot in parallel; nodes
2 and 3 then join node 1 as an operator would (`rabbitmqctl stop_app; join_cluster; start_app`).

Each node is a ThrowawayRabbitMQ (conftest.py): the same start, clean stop (`rabbitmqctl stop`),
SIGKILL of its process group, and AMQP-handshake readiness check.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.conftest import EPMD, RABBITMQ_BIN, ThrowawayRabbitMQ, node_environment, server_port

CLUSTER_SIZE = 3


class ClusterNode(ThrowawayRabbitMQ):
    """One node of the cluster: ThrowawayRabbitMQ with a shared epmd and a shared HOME (cookie).

    The cluster owns the epmd: a node never starts one, and close() leaves it running.
    """

    def __init__(self, base: Path, index: int, home: Path, epmd_port: int, port: int | None = None,
                 dist_port: int | None = None):
        # Not ThrowawayRabbitMQ.__init__: that one makes its own epmd port and cookie. The attributes
        # below are all its methods use.
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.index = index
        self.name = f"eye_c{index}_{uuid.uuid4().hex[:8]}@localhost"
        self.port = port or server_port()
        self.dist_port = dist_port or server_port()
        self.epmd_port = epmd_port
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.pid_file = base / "node.pid"
        self.env = node_environment(self, home=home, config=(
            # No waiting 30 s x 10 for a peer's tables at boot: the drills restart a node while the
            # others run, and a replacement boots alone before it joins.
            "mnesia_table_loading_retry_timeout = 5000\n"
            "mnesia_table_loading_retry_limit = 12\n"
        ))  # HOME: the shared .erlang.cookie
        self._epmd = None  # never started by a node (see ThrowawayRabbitMQ.start): the cluster's runs
        self._node = None
        self._node_log = None
        self._launched_at = 0.0

    @property
    def short(self) -> str:
        return f"c{self.index}"

    def launch(self) -> None:
        """Start the node's process and return at once (wait_started() waits for its AMQP port)."""
        if self.running:
            return
        self._node_log = open(self.base / "node.log", "ab")
        self._node = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, cwd=self.base,
                                      stdout=self._node_log, stderr=subprocess.STDOUT, start_new_session=True)
        self._launched_at = time.monotonic()

    def wait_started(self, timeout: float = 90.0) -> float:
        """Wait until the launched node completes an AMQP handshake; returns that moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._node is None or self._node.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited at start:\n{self.log()[-3000:]}")
            if self.accepts_connections():
                return time.monotonic()
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"RabbitMQ node {self.name} did not accept connections within {timeout} s:\n"
                           f"{self.log()[-3000:]}")

    def start(self, timeout: float = 90.0) -> float:
        if self.running:
            return time.monotonic()
        self.launch()
        return self.wait_started(timeout)

    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60, check: bool = True,
            target: "ClusterNode | None" = None) -> subprocess.CompletedProcess:
        """Run a CLI tool against this node (or `target`), as this node's environment sees the cluster."""
        node = target or self
        done = subprocess.run([str(RABBITMQ_BIN / tool), "-n", node.name, *args], env=self.env, cwd=self.base,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} -n {node.name} {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}")
        return done

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


class ThrowawayRabbitCluster:
    """Three clustered RabbitMQ nodes of our own (see the module's docstring)."""

    def __init__(self, base: Path | None = None, size: int = CLUSTER_SIZE):
        self.base = base or Path(tempfile.mkdtemp(prefix="eye_fault_cluster_"))
        self.home = self.base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        self.epmd_port = server_port()
        self._epmd: subprocess.Popen | None = None
        self._generation = 0
        self.nodes: list[ClusterNode] = [self._new_node(index) for index in range(1, size + 1)]
        self.replaced: list[str] = []  # names of nodes wiped and replaced (forgotten by the cluster)
        self.formed_in = self.booted_in = 0.0
        self.last_queues: list[dict] = []
        self._lock = threading.Lock()

    def _new_node(self, index: int, port: int | None = None, dist_port: int | None = None) -> ClusterNode:
        self._generation += 1
        return ClusterNode(self.base / f"c{index}-{self._generation}", index, self.home, self.epmd_port,
                           port=port, dist_port=dist_port)

    # Addresses.

    @property
    def url(self) -> str:
        """Kombu's failover form: every node's AMQP URL, separated by `;`, node 1 first."""
        return self.url_from(0)

    def url_from(self, first: int) -> str:
        """The failover URL listing the nodes from node index `first` (0-based) on, round the ring."""
        order = self.nodes[first:] + self.nodes[:first]
        return ";".join(node.url for node in order)

    def node(self, which: "ClusterNode | str | int") -> ClusterNode:
        """A node by object, name, short name (c2) or 1-based index."""
        if isinstance(which, ClusterNode):
            return which
        for node in self.nodes:
            if which in (node.name, node.short, node.index):
                return node
        raise KeyError(which)

    def running_node(self, besides: "ClusterNode | None" = None) -> ClusterNode:
        for node in self.nodes:
            if node.running and node is not besides:
                return node
        raise RuntimeError("no node of the cluster is running")

    # Life cycle.

    def _ensure_epmd(self) -> None:
        if self._epmd is None or self._epmd.poll() is not None:
            self._epmd = subprocess.Popen([EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                          env={**os.environ, "HOME": str(self.home)},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)

    def start(self, timeout: float = 120.0) -> float:
        """Boot the three nodes in parallel and cluster them; returns the seconds it took."""
        started = time.monotonic()
        self._ensure_epmd()
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started(timeout)
        self.booted_in = time.monotonic() - started
        seed, joining = self.nodes[0], self.nodes[1:]
        # Their apps stop at once (each CLI call costs a second of an Erlang VM's start), but they join one
        # after the other: a node whose app starts while another joins can fail to start mnesia (seen:
        # start_app's `{badmatch, {error, {normal, {mnesia_app, start, …}}}}`), and a join waits for every
        # member's mnesia to be up.
        with ThreadPoolExecutor(len(joining)) as pool:
            list(pool.map(lambda node: node.ctl("stop_app"), joining))
        for node in joining:
            self._join(node, seed, stopped=True)
        self.wait_clustered(timeout=30)
        self.formed_in = time.monotonic() - started
        return self.formed_in

    def start_in_background(self) -> "ThrowawayRabbitCluster":
        """Form the cluster in a thread (the caller sets up the rest meanwhile); wait_formed() waits for it."""
        def form():
            try:
                self.start()
            except BaseException as exc:  # handed to wait_formed()
                self._failure = exc
        self._failure = None
        self._forming = threading.Thread(target=form, name="cluster-start", daemon=True)
        self._forming.start()
        return self

    def wait_formed(self, timeout: float = 180.0) -> None:
        forming = getattr(self, "_forming", None)
        if forming is not None:
            forming.join(timeout)
            if forming.is_alive():
                raise RuntimeError(f"the cluster did not form within {timeout} s:\n{self.logs()}")
            self._forming = None
        if getattr(self, "_failure", None) is not None:
            raise RuntimeError(f"the cluster did not form: {self._failure}") from self._failure

    def _join(self, node: ClusterNode, seed: ClusterNode, stopped: bool = False) -> None:
        if not stopped:
            node.ctl("stop_app")
        node.ctl("join_cluster", seed.name)
        node.ctl("start_app")
        node.wait_started(60)

    def running_members(self) -> set[str]:
        """The running nodes the cluster reports (asked of one running node)."""
        done = self.running_node().ctl("cluster_status", "--formatter", "json", "-q")
        return set(json.loads(done.stdout)["running_nodes"])

    def wait_clustered(self, timeout: float = 30.0) -> None:
        want = {node.name for node in self.nodes}
        deadline = time.monotonic() + timeout
        while True:
            members = self.running_members()
            if members == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form: running {sorted(members)}, want {sorted(want)}")
            time.sleep(0.5)

    def kill(self, which) -> float:
        """SIGKILL a node (its whole process group); returns the moment it is gone."""
        self.node(which).kill()
        return time.monotonic()

    def stop(self, which) -> float:
        """Stop a node cleanly (`rabbitmqctl stop`); returns the moment its process is gone."""
        self.node(which).stop()
        return time.monotonic()

    def start_node(self, which, timeout: float = 90.0) -> float:
        """Start a stopped node again (it rejoins the cluster by itself); returns the moment it accepts AMQP."""
        return self.node(which).start(timeout)

    def wipe_and_replace(self, which, timeout: float = 90.0) -> tuple[ClusterNode, float]:
        """A node lost for good, data folder and all, and a fresh one in its place.

        The old node is stopped and its folder deleted, the cluster forgets it (which also removes it
        from the quorum queues' members), a new node (a new name and data folder, the same AMQP port so
        the services' failover URL still holds) boots, joins, and is added to every quorum queue
        (`rabbitmq-queues grow <new> all`). Returns the new node and the moment it was a member of the
        queues again.
        """
        old = self.node(which)
        position = self.nodes.index(old)
        steps = {"started": time.monotonic()}
        self.last_replacement = steps
        old.stop()
        steps["stopped"] = time.monotonic()
        shutil.rmtree(old.base / "mnesia", ignore_errors=True)
        other = self.running_node(besides=old)
        other.ctl("forget_cluster_node", old.name, timeout=90)
        steps["forgotten"] = time.monotonic()
        self.replaced.append(old.name)
        fresh = self._new_node(old.index, port=old.port, dist_port=old.dist_port)
        with self._lock:
            self.nodes[position] = fresh
        old.close()
        fresh.start(timeout)
        steps["booted"] = time.monotonic()
        self._join(fresh, other)
        steps["joined"] = time.monotonic()
        other.ctl("grow", fresh.name, "all", tool="rabbitmq-queues", timeout=90)
        steps["grown"] = time.monotonic()
        return fresh, steps["grown"]

    def replacement_steps(self) -> str:
        """How long each step of the last wipe_and_replace took, e.g. `stop 2.1 s, forget 1.9 s, …`."""
        steps = list(getattr(self, "last_replacement", {}).items())
        return ", ".join(f"{name} {moment - steps[i][1]:.1f} s" for i, (name, moment) in enumerate(steps[1:]))

    def close(self) -> None:
        """Kill every node and the epmd, and remove every file of theirs."""
        forming = getattr(self, "_forming", None)
        if forming is not None:
            forming.join(180)  # a node launched meanwhile would outlive us
        keep = os.environ.get("EYE_CLUSTER_KEEP_LOGS")  # a folder to copy the nodes' logs to, to read them later
        if keep:
            for node in self.nodes:
                if (node.base / "log").is_dir():
                    shutil.copytree(node.base / "log", Path(keep) / node.name, dirs_exist_ok=True)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.close(), self.nodes))
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.kill()
            self._epmd.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)

    # What the cluster says about a queue.

    def queues(self, vhost: str = "/") -> list[dict]:
        """`list_queues name type leader members online` of one running node, as dicts."""
        done = self.running_node().ctl("list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
                                       "--formatter", "json", "-q")
        return json.loads(done.stdout or "[]")

    def queue(self, name: str) -> dict | None:
        return next((q for q in self.queues() if q["name"] == name), None)

    def leader_of(self, queue_name: str) -> ClusterNode:
        """The node that leads a quorum queue."""
        info = self.queue(queue_name)
        if info is None or not info.get("leader"):
            raise RuntimeError(f"queue {queue_name!r} has no leader: {info}")
        return self.node(info["leader"])

    def members_of(self, queue_name: str) -> list[str]:
        info = self.queue(queue_name)
        return list(info.get("members") or []) if info else []

    def wait_queue_members(self, queue_name: str, count: int = CLUSTER_SIZE, timeout: float = 30.0) -> dict:
        """Wait until a quorum queue has `count` members, all online (and a leader); returns its info."""
        deadline = time.monotonic() + timeout
        while True:
            self.last_queues = self.queues()  # the others' too, for the caller (each CLI call costs a second)
            info = next((q for q in self.last_queues if q["name"] == queue_name), None)
            if info and info.get("leader") and len(info.get("members") or []) == count \
                    and len(info.get("online") or []) == count:
                return info
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue {queue_name!r} did not get {count} online members: {info}")
            time.sleep(0.5)

    def connections_per_node(self) -> dict[str, int]:
        """How many client connections each node holds (a connection's name ends with its node's AMQP port)."""
        done = self.running_node().ctl("list_connections", "name", "--formatter", "json", "-q")
        names = [str(row.get("name", "")) for row in json.loads(done.stdout or "[]")]
        return {node.name: sum(name.endswith(f"-> 127.0.0.1:{node.port}") for name in names) for node in self.nodes}

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(f"--- {node.name}\n{node.log()[-tail:]}" for node in self.nodes)

"""The benchmark tools keep working: each runs for a few seconds on a tiny load.

The figures are never asserted here (they are measured, not tested); only that each tool runs to
the end, and that the ingest bench's own count check passes.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures.apps import make_key_factory
from tests.fixtures.processes import ROOT, free_port
from tests.fixtures.services import delete_broker_entities

pytestmark = pytest.mark.slow


@pytest.fixture
def bench_queue(service_env) -> str:
    return f"{service_env['EYE_QUEUE']}_bench"


@pytest.fixture
def live_service(pg_app, service_env, start_web_process, start_worker_process, broker_url, bench_queue):
    """A web process and a worker on the run's database, with a queue of their own (removed after)."""
    queue = bench_queue
    env = {**service_env, "EYE_QUEUE": queue, "PYTHONPATH": str(ROOT / "src")}
    worker = start_worker_process(env)
    web, url = start_web_process(env)
    yield url
    # Stopped first, so that no consumer declares the queue again once it is gone.
    web.stop()
    worker.stop()
    delete_broker_entities(broker_url, [queue], [queue])


def databases_named(admin_url: str, pattern: str) -> list[str]:
    """The databases whose name is LIKE `pattern` (what a bench left behind)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
                                      {"pattern": pattern}).scalars().all()
    finally:
        engine.dispose()


def run_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ingest_bench_runs_and_its_count_check_passes(live_service, pg_app, service_env, tmp_path):
    key = make_key_factory(pg_app)("ingest")
    report = tmp_path / "ingest.json"
    for mode in ("single", "batch"):
        result = run_bench("bench/ingest.py", "--url", live_service, "--api-key", key, "--database-url",
                           service_env["DATABASE_URL"], "--mode", mode, "--batch-size", "20", "--concurrency", "2",
                           "--duration", "2", "--rate", "100", "--drain-timeout", "60", "--json", str(report))
        assert result.returncode == 0, result.stdout + result.stderr
        figures = json.loads(report.read_text())
        assert figures["count_check"] == "pass" and figures["accepted_events"] > 0
        assert "accepted events/s" in result.stdout


STEP_FIELDS = {
    "offered_per_second", "accepted_per_second", "stored_per_second", "stored_at_end_of_load", "drain_seconds",
    "queue_slope_per_second", "backlog_slope_per_second", "late_requests", "statuses", "ack_latency_ms",
    "cpu_seconds_per_1000_events", "missing", "duplicated", "extra", "count_check", "sustainable", "reasons",
}


def test_ingest_bench_steps_report_each_step_and_a_verdict(live_service, pg_app, service_env, broker_url,
                                                           bench_queue, tmp_path):
    key = make_key_factory(pg_app)("ingest")
    report = tmp_path / "steps.json"
    result = run_bench("bench/ingest.py", "--url", live_service, "--api-key", key, "--database-url",
                       service_env["DATABASE_URL"], "--broker-url", broker_url, "--queue", bench_queue,
                       "--shape", "single", "--step-rates", "20,40", "--step-seconds", "3", "--warmup-seconds", "1",
                       "--step-pause", "0.5", "--processes", "1", "--concurrency", "4", "--drain-timeout", "30",
                       "--json", str(report), timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    assert [step["target_per_second"] for step in figures["steps"]] == [20, 40]
    for step in figures["steps"]:
        assert STEP_FIELDS <= step.keys()
        assert set(step["ack_latency_ms"]) == {"p50", "p99", "p99.9"}
        assert set(step["cpu_seconds_per_1000_events"]) >= {"web", "worker", "postgresql", "rabbitmq", "bench"}
        assert step["count_check"] == "pass" and step["accepted_events"] > 0
        assert step["missing"] == step["duplicated"] == step["extra"] == 0
    assert figures["count_check"] == "pass"
    assert {"sustainable_per_second", "rule", "text"} <= figures["verdict"].keys()
    assert "verdict:" in result.stdout


def test_mouse_bench_runs(live_service, tmp_path):
    report = tmp_path / "mouse.json"
    result = run_bench("bench/mouse.py", "--url", live_service, "--pages", "2", "--duration", "2", "--warmup", "1",
                       "--json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())


def test_queries_bench_runs(postgres_admin_url, tmp_path):
    report = tmp_path / "queries.json"
    result = run_bench("bench/queries.py", "--events", "2000", "--admin-url", postgres_admin_url, "--runs", "3",
                       "--walks", "1", "--json", str(report), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())


def test_growth_bench_runs(postgres_admin_url, tmp_path):
    """Both schemas (the unpartitioned one from a worktree of the commit before partitioning), tiny sizes."""
    report = tmp_path / "growth.json"
    result = run_bench("bench/growth.py", "--smoke", "--admin-url", postgres_admin_url,
                       "--base-tree", str(tmp_path / "base"), "--json", str(report), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    assert {step["schema"] for step in figures["growth"]} == {"unpartitioned", "partitioned"}


def test_compare_mouse_runs_each_commit_and_leaves_nothing_behind(postgres_admin_url, broker_url, tmp_path):
    """The dashboard-pages A/B: this tree as both commits, one page, one round."""
    port = free_port()
    out = tmp_path / "mouse.jsonl"
    env = {**os.environ, "PYTHON": sys.executable, "ADMIN_URL": postgres_admin_url, "BROKER_URL": broker_url,
           "PORT": str(port), "DURATION": "2", "WARMUP": "1", "OUT": str(out)}
    result = subprocess.run(["bash", "bench/compare_mouse.sh", str(ROOT), str(ROOT), "1", "1"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(run["commit"], run["pages"]) for run in runs] == [("A", 1), ("B", 1)]
    assert all(run["figures"].get("batches_counted", 0) > 0 for run in runs), runs
    assert databases_named(postgres_admin_url, "eye_cmp_mouse_%") == []


def test_mouse_path_bench_runs_and_leaves_nothing_behind(postgres_admin_url, broker_url, tmp_path):
    report = tmp_path / "mouse_path.json"
    result = run_bench("bench/mouse_path.py", "--admin-url", postgres_admin_url, "--broker-url", broker_url,
                       "--batches", "40", "--per-transaction", "1,2", "--posts", "30", "--json", str(report),
                       timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    assert [row["per_transaction"] for row in figures["transaction"]] == [1, 2]
    assert all(row["batches"] == 40 and row["python_ms_per_batch"] > 0 for row in figures["transaction"])
    assert figures["post"]["statuses"] == {"202": 30}
    assert databases_named(postgres_admin_url, "eye_bench_mouse_path_%") == []


def test_compare_commits_runs_each_commit_and_leaves_nothing_behind(postgres_admin_url, broker_url, tmp_path):
    """The ingest A/B: this tree as both commits, one short step of single events, one round."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    port = free_port()
    report = tmp_path / "compare.json"
    result = run_bench("bench/compare_commits.py", "--tree", f"A={ROOT}", "--tree", f"B={ROOT}",
                       "--figures", "steps-single", "--rounds", "1", "--single-rates", "20", "--step-seconds", "3",
                       "--settle", "0.5", "--admin-url", postgres_admin_url, "--broker-url", broker_url,
                       "--port", str(port), "--data-dir", str(tmp_path / "data"), "--json", str(report), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "steps-single round 1 A" in result.stdout and "steps-single round 1 B" in result.stdout
    assert report.exists()
    assert databases_named(postgres_admin_url, "eye_cmp_%") == []
    # Each run's database, queue and channel were named after it (its report's file name): all gone.
    names = re.findall(r"/(eye_cmp_[\w-]+)\.json", result.stdout)
    assert len(names) == 2, result.stdout
    with Connection(broker_url) as broker:
        for name in names:
            with pytest.raises(NotFound):  # a passive declare of a missing queue is refused
                broker.channel().queue_declare(name, passive=True)

"""Without the real servers the suite skips what needs them, and says why; EYE_REQUIRE_SERVICES=1 fails.

A missing PostgreSQL is no skip: the tests then run on an embedded one (tests/fixtures/services.py).
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def run_integration_test(require: bool) -> subprocess.CompletedProcess:
    env = {**os.environ,
           "EYE_TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
           "EYE_TEST_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    env.pop("EYE_REQUIRE_SERVICES", None)
    env.pop("EYE_TEST_EMBEDDED_DATABASE", None)
    if require:
        env["EYE_REQUIRE_SERVICES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/integration/test_ingest_pipeline.py::test_two_applications_on_one_session_concurrently"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_missing_servers_are_a_skip_with_a_reason():
    result = run_integration_test(require=False)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    # The database came up embedded; the broker has no stand-in.
    assert "needs PostgreSQL" not in result.stdout
    assert "needs RabbitMQ" in result.stdout and "EYE_REQUIRE_SERVICES=1" in result.stdout


def test_missing_servers_fail_when_required():
    result = run_integration_test(require=True)
    assert result.returncode != 0
    assert "PostgreSQL is required (EYE_REQUIRE_SERVICES=1)" in result.stdout

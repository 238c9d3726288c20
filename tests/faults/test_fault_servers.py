"""The fault tests' own servers: without their binaries, a skip that says why (a failure when required)."""

import pytest

from tests.faults.conftest import need_binaries

pytestmark = pytest.mark.faults

MISSING = "/nonexistent/eye-faults/rabbitmq-server"


def test_missing_binaries_are_a_skip_with_a_reason(monkeypatch):
    monkeypatch.delenv("EYE_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"RabbitMQ binaries \\(missing: {MISSING}\\).*EYE_REQUIRE_SERVICES=1"):
        need_binaries("RabbitMQ", [MISSING])


def test_missing_binaries_fail_when_services_are_required(monkeypatch):
    monkeypatch.setenv("EYE_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=f"missing: {MISSING}"):
        need_binaries("RabbitMQ", [MISSING])


def test_present_binaries_pass(monkeypatch):
    monkeypatch.setenv("EYE_REQUIRE_SERVICES", "1")
    assert need_binaries("a shell", ["/bin/sh"]) is None  # neither skips nor fails

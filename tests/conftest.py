"""Fixtures live in tests/fixtures/ as pytest plugins (the real services, apps, workers, keys)."""

import json
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.apps", "tests.fixtures.processes"]

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The shared request bodies (../shared/samples), including the broken ones."""
    if not SAMPLES.is_dir():
        pytest.fail(f"the shared samples are missing: expected them at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def sample(samples_dir):
    """Factory: a sample body by name, parsed (or raw bytes with raw=True)."""

    def load(name: str, raw: bool = False):
        data = (samples_dir / f"{name}.json").read_bytes()
        return data if raw else json.loads(data)

    return load

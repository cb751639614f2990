"""The operator's command line: clear refusals, and migrations on their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR = str(Path(sys.executable).with_name("sagaz-operator"))


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SAGAZ_DATABASE_URL"}
    return subprocess.run(
        [OPERATOR, *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refuses_to_start_without_a_database_url() -> None:
    done = run("--standalone")

    assert done.returncode == 2
    assert "SAGAZ_DATABASE_URL is not set" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAGAZ_STATUS_INTERVAL", "soon", "SAGAZ_STATUS_INTERVAL must be a number of seconds"),
        ("SAGAZ_STATUS_INTERVAL", "0", "SAGAZ_STATUS_INTERVAL must be more than 0 seconds"),
        ("SAGAZ_METRICS_ADDRESS", "[::]:99999", "SAGAZ_METRICS_ADDRESS must be host:port"),
        ("SAGAZ_STATUS_WRITES_PER_SECOND", "many", "SAGAZ_STATUS_WRITES_PER_SECOND must be a"),
        ("SAGAZ_STATUS_WRITES_PER_SECOND", "-1", "must be more than 0 a second, not -1.0"),
    ],
)
def test_refuses_a_bad_setting_naming_it(variable: str, value: str, message: str) -> None:
    done = run(
        "--standalone", SAGAZ_DATABASE_URL="postgresql://x@127.0.0.1:9/x", **{variable: value}
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_refuses_to_start_when_the_database_is_unreachable() -> None:
    done = run("--standalone", SAGAZ_DATABASE_URL="postgresql://sagaz:x@127.0.0.1:9/sagaz")

    assert done.returncode == 2
    assert "cannot reach the database" in done.stderr


@pytest.mark.postgres
def test_migrations_apply_once_and_are_idempotent(postgres_url: str) -> None:
    first = run("--migrate-only", SAGAZ_DATABASE_URL=postgres_url)
    second = run("--migrate-only", SAGAZ_DATABASE_URL=postgres_url)

    assert first.returncode == second.returncode == 0
    assert second.stdout.strip() == "sagaz-operator: migrations applied: none needed"


@pytest.mark.postgres
def test_refuses_to_trace_without_opentelemetry_naming_the_extra(
    postgres_url: str, tmp_path: Path
) -> None:
    # An installation without the tracing extra: `opentelemetry` cannot be imported.
    (tmp_path / "opentelemetry").mkdir()
    (tmp_path / "opentelemetry" / "__init__.py").write_text("raise ImportError('not here')\n")
    done = run(
        "--standalone",
        SAGAZ_DATABASE_URL=postgres_url,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        PYTHONPATH=str(tmp_path),
    )

    assert done.returncode == 2
    assert "pip install 'sagaz-operator[tracing]'" in done.stderr
    assert "Traceback" not in done.stderr

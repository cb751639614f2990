"""The external metrics API's settings: off unless asked for, and a clear error when incomplete."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagaz_operator.config import ExternalMetricsSettings, Settings
from sagaz_operator.errors import ConfigError

BASE = {"SAGAZ_DATABASE_URL": "postgresql://u@h/db"}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).write_text("PEM")
    return {
        "SAGAZ_EXTERNAL_METRICS_ADDRESS": "0.0.0.0:6443",
        "SAGAZ_EXTERNAL_METRICS_CERT_FILE": str(tmp_path / "tls.crt"),
        "SAGAZ_EXTERNAL_METRICS_KEY_FILE": str(tmp_path / "tls.key"),
    }


def test_off_by_default() -> None:
    assert Settings.from_environment(BASE).external_metrics is None


def test_on_with_a_certificate(files: dict[str, str], tmp_path: Path) -> None:
    settings = Settings.from_environment({**BASE, **files}).external_metrics
    assert settings == ExternalMetricsSettings(
        address=("0.0.0.0", 6443), cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key"
    )
    narrowed = Settings.from_environment(
        {
            **BASE,
            **files,
            "SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE": str(tmp_path / "ca.crt"),
            "SAGAZ_EXTERNAL_METRICS_ALLOWED_NAMES": "front-proxy-client, aggregator",
            "SAGAZ_EXTERNAL_METRICS_AUTHORIZE": "false",
        }
    ).external_metrics
    assert narrowed is not None
    assert narrowed.client_ca_file == tmp_path / "ca.crt"
    assert narrowed.allowed_names == ("front-proxy-client", "aggregator")
    assert narrowed.authorize is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SAGAZ_EXTERNAL_METRICS_CERT_FILE": ""}, "SAGAZ_EXTERNAL_METRICS_CERT_FILE must be"),
        ({"SAGAZ_EXTERNAL_METRICS_KEY_FILE": "/nonexistent/key"}, "no file /nonexistent/key"),
        ({"SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE": "/nonexistent/ca"}, "no file /nonexistent"),
        ({"SAGAZ_EXTERNAL_METRICS_AUTHORIZE": "maybe"}, "true or false"),
        ({"SAGAZ_EXTERNAL_METRICS_ADDRESS": "6443"}, "host:port"),
    ],
)
def test_an_incomplete_setting_is_a_clear_error(
    files: dict[str, str], change: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_environment({**BASE, **files, **change})

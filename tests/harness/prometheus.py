"""A real Prometheus, and promtool, for the alert and dashboard tests.

Both are built once per machine by ``hack/prometheus.sh`` (``make test`` builds them before
pytest). The server runs on loopback with a throw-away data directory and a one-second
scrape interval, so a test sees its metrics within seconds; readiness is ``/-/ready``.
"""

from __future__ import annotations

import json
import math
import subprocess
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.stack import HACK, REPO_ROOT, free_port, stop_process, wait_until_answering

ALERTS = REPO_ROOT / "charts" / "sagaz-operator" / "files" / "alerts.yaml"
DASHBOARD = REPO_ROOT / "charts" / "sagaz-operator" / "dashboards" / "sagaz.json"


@cache
def binaries() -> Path:
    """The directory holding ``prometheus`` and ``promtool`` (built if missing)."""
    done = subprocess.run(
        [str(HACK / "prometheus.sh"), "path"], check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries() / "promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


class Prometheus:
    """``prometheus`` scraping ``targets`` (job name -> host:port list) every second."""

    def __init__(self, *, targets: dict[str, list[str]], data: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in targets.items()
            ],
        }
        data.mkdir(parents=True, exist_ok=True)
        (data / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._command = [
            str(binaries() / "prometheus"),
            f"--config.file={data / 'prometheus.yml'}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, within: float = 60) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self._command, stdout=out, stderr=subprocess.STDOUT)
        wait_until_answering(
            f"{self.url}/-/ready", self.process, what="prometheus", log=self.log, within=within
        )

    def stop(self) -> None:
        stop_process(self.process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str | float) -> Any:
        """``GET /api/v1/<path>``'s ``data``; an error answer raises with Prometheus's reason."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: {error.read().decode()}") from error
        assert body["status"] == "success", body
        return body["data"]

    def finite_points(self, expr: str, *, start: float, end: float) -> int:
        """How many non-NaN points ``expr`` has between ``start`` and ``end`` (1 s steps)."""
        data = self.api("query_range", query=expr, start=start, end=end, step=1)
        return sum(
            1
            for series in data["result"]
            for _, value in series["values"]
            if not math.isnan(float(value))
        )

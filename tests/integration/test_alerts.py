"""The chart's alert rules: valid, unit-tested by promtool, shipped unchanged, documented.

charts/sagaz-operator/files/alerts.yaml is the one copy of the rules; tests/alerts/
alerts.test.yaml gives every alert series that fire it and series that must not.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from harness import chart
from harness.prometheus import ALERTS, DASHBOARD, promtool
from harness.stack import REPO_ROOT

TESTS = REPO_ROOT / "tests" / "alerts" / "alerts.test.yaml"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_finds_the_rules_valid() -> None:
    checked = promtool("check", "rules", str(ALERTS))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    tested = promtool("test", "rules", str(TESTS))

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_fires_and_stays_quiet_in_some_unit_test() -> None:
    cases = yaml.safe_load(TESTS.read_text())["tests"]
    evaluations = [check for case in cases for check in case.get("alert_rule_test", [])]
    fired = {check["alertname"] for check in evaluations if check["exp_alerts"]}
    quiet = {check["alertname"] for check in evaluations if not check["exp_alerts"]}
    names = {rule["alert"] for rule in alerts()}

    assert names == fired == quiet


def test_every_alert_is_actionable_and_has_a_runbook_entry_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Alerts and runbook", 1)[1].split("\n## ", 1)[0]
    for rule in alerts():
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert re.search(rf"^\| `{rule['alert']}` \|", section, re.MULTILINE), rule["alert"]


def test_the_chart_ships_the_rules_file_unchanged_when_enabled() -> None:
    assert not [
        doc
        for doc in chart.render()
        if doc["kind"] in {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
    ]  # each off by default

    (rule,) = chart.render(
        "metrics.prometheusRule.enabled=true", show_only="templates/monitoring.yaml"
    )

    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())


def test_the_monitors_scrape_the_operator_and_the_workers_under_the_alerts_job_names() -> None:
    rendered = chart.render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
        show_only="templates/monitoring.yaml",
    )
    kinds = {doc["kind"]: doc for doc in rendered}
    operator, workers = kinds["ServiceMonitor"], kinds["PodMonitor"]

    (endpoint,) = operator["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["honorLabels"]) == ("metrics", True)
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "sagaz-operator"}]
    assert operator["metadata"]["labels"]["release"] == "prom"
    services = [doc for doc in chart.render() if doc["kind"] == "Service"]
    assert any(
        port["name"] == "metrics"
        and doc["spec"]["selector"].items() <= operator["spec"]["selector"]["matchLabels"].items()
        for doc in services
        for port in doc["spec"]["ports"]
    )
    (pods,) = workers["spec"]["podMetricsEndpoints"]
    assert pods["port"] == "http"  # the container port domain/workers.py names
    assert pods["relabelings"] == [{"targetLabel": "job", "replacement": "sagaz-outbox-worker"}]
    assert workers["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "sagaz-outbox-worker"
    )
    assert workers["spec"]["namespaceSelector"] == {"any": True}


def test_the_chart_ships_the_dashboard_for_grafanas_sidecar_when_enabled() -> None:
    (config_map,) = chart.render(
        "metrics.dashboard.enabled=true", show_only="templates/monitoring.yaml"
    )

    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["sagaz.json"]) == json.loads(DASHBOARD.read_text())

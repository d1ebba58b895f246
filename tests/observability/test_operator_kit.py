"""The Prometheus rules, the Grafana dashboard and the app agree on what exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "groundwork.json"
# The app's own metric families; others (up, process_*) come from Prometheus or the client.
OURS = re.compile(
    r"(?<![:\w])((?:http|auth|db_pool|password_hash|rate_limit|jobs?|worker)_[a-z_]+)\b"
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (Debian package `prometheus`; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_config_and_its_rules() -> None:
    result = run(promtool(), "check", "config", "prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    rules = sorted(str(path) for path in (PROMETHEUS / "rules").glob("*.yml"))
    assert rules

    result = run(promtool(), "check", "rules", *rules)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_the_series_they_guard() -> None:
    result = run(promtool(), "test", "rules", "tests/groundwork_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_slo_window_pair_has_an_alert() -> None:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "groundwork.yml").read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}

    for slo in ("Availability", "Latency"):
        for speed in ("Fast", "Slow"):
            alert = alerts[f"Groundwork{slo}BudgetBurn{speed}"]
            # Multi-window: a long window and a short one, ANDed, twice over.
            assert alert["expr"].count(" and ") == 2
    assert {
        "GroundworkHigh5xxRate",
        "GroundworkReadinessFailing",
        "GroundworkDbPoolSaturated",
        "GroundworkJobsDead",
        "GroundworkJobsLate",
    } <= set(alerts)


def referenced_metrics() -> set[str]:
    texts = [DASHBOARD.read_text()]
    texts += [path.read_text() for path in (PROMETHEUS / "rules").glob("*.yml")]
    return {name for text in texts for name in OURS.findall(text)}


async def test_dashboard_and_rules_read_only_metrics_the_app_exports(
    client: httpx.AsyncClient,
) -> None:
    exposition = (await client.get("/metrics")).text
    exported: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        exported.add(family.name)
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
        }.get(family.type, [])
        exported.update(family.name + suffix for suffix in suffixes)

    missing = referenced_metrics() - exported

    assert referenced_metrics()
    assert missing == set()


def test_the_dashboard_is_provisioned_with_both_datasources() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )["datasources"]
    uids = {source["uid"] for source in datasources}
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()

    for topic in ("requests", "5xx", "p99", "in progress", "pool", "logins", "rate-limit"):
        assert topic in titles, topic
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} <= uids
    [prometheus] = [source for source in datasources if source["type"] == "prometheus"]
    [link] = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert link["datasourceUid"] in uids

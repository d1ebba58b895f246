"""deploy/k8s: valid against the Kubernetes schemas, and in step with the app.

Validated offline (kubernetes-validate bundles the schemas), strictly: an
unknown or misspelt field fails. Then what the schemas cannot know: the
probes hit the app's health routes on the container's port, every variable
is a setting (or the OpenTelemetry SDK's), secrets are in the Secret, the
grace period covers the drain, and the pods can run read-only as the
image's user.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from app.core.config import SECRET_SETTINGS as FILE_SETTINGS
from app.core.config import Settings
from app.core.resources import Resources
from app.jobs.probes import probe_app
from tests.conftest import client_for

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
COMPONENT = "app.kubernetes.io/component"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
IMAGE_UID = 10001
ARGON2_MIB = 19
# One process idle, measured: about 105 MiB; the rest is headroom.
PROCESS_BASELINE_MIB = 128
# Closing the pools and flushing spans after the drain (docs/operations.md).
SHUTDOWN_FLUSH_SECONDS = 15
# What a draining worker allows itself to record its last jobs (app/jobs/worker.py).
WORKER_SETTLE_SECONDS = 10


def _documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


DOCUMENTS = _documents()


def _one(kind: str, component: str | None = None) -> dict[str, Any]:
    matching = [
        doc
        for doc in DOCUMENTS
        if doc["kind"] == kind
        and (
            component is None
            or doc["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(matching) == 1, f"expected one {kind}"
    return matching[0]


# Each workload by (kind, component): the API, the job worker, the migration Job.
API = ("Deployment", "api")
WORKER = ("Deployment", "worker")
MIGRATE = ("Job", None)
WORKLOADS = [API, WORKER, MIGRATE]


def _pod(workload: tuple[str, str | None]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(*workload)["spec"]["template"]["spec"]
    return spec


def _container(workload: tuple[str, str | None]) -> dict[str, Any]:
    containers = _pod(workload)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _config() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap")["data"]
    return data


def _secret() -> dict[str, str]:
    data: dict[str, str] = _one("Secret")["stringData"]
    return data


def _mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, f"unexpected quantity {quantity}"
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


SETTING_NAMES = {name.upper() for name in Settings.model_fields}
SECRET_SETTINGS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
}


@pytest.mark.parametrize(
    "document", DOCUMENTS, ids=[f"{doc['kind']}/{doc['metadata']['name']}" for doc in DOCUMENTS]
)
def test_each_manifest_is_valid_against_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_every_kind_an_operator_needs_is_there() -> None:
    kinds = sorted(doc["kind"] for doc in DOCUMENTS)

    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PodDisruptionBudget",
            "Secret",
            "Service",
        ]
    )


# --- probes and ports --------------------------------------------------------------


async def test_the_probes_hit_the_apps_health_routes_on_the_containers_port(
    client: httpx.AsyncClient,
) -> None:
    container = _container(API)
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    probes = [container[name]["httpGet"] for name in PROBES]

    assert [probe["path"] for probe in probes] == ["/health/live", "/health/ready", "/health/live"]
    for probe in probes:
        assert (await client.get(probe["path"])).status_code == 200
        assert probe["port"] in port_names
    assert port_names["http"] == int(_config()["PORT"])
    # Inside a pod the app must listen beyond loopback.
    assert _config()["HOST"] == "0.0.0.0"  # noqa: S104


def test_the_readiness_probe_waits_longer_than_the_apps_own_check() -> None:
    probe = _container(API)["readinessProbe"]

    assert probe["timeoutSeconds"] > _settings().health_check_timeout_seconds


def test_the_service_the_hpa_and_the_pdb_find_the_api_pods() -> None:
    deployment = _one(*API)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one("Service")
    port_names = {port["name"] for port in _container(API)["ports"]}

    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    # The HPA owns the count; a fixed one would be reset by every apply.
    assert "replicas" not in deployment["spec"]


# --- settings ----------------------------------------------------------------------


def _settings() -> Settings:
    """The Settings the pods get from the ConfigMap and the Secret, with a real key."""
    values: dict[str, Any] = {**_config(), **_secret()}
    values["SECRET_KEY"] = secrets.token_urlsafe(48)
    app_values = {name.lower(): value for name, value in values.items() if name in SETTING_NAMES}
    return Settings(_env_file=None, **app_values)


def _env_names(container: dict[str, Any]) -> set[str]:
    return {entry["name"] for entry in container.get("env", [])}


def test_every_variable_is_a_setting_or_an_opentelemetry_one() -> None:
    names = set(_config()) | set(_secret())
    for workload in WORKLOADS:
        names |= _env_names(_container(workload))

    unknown = {name for name in names if name not in SETTING_NAMES and not name.startswith("OTEL_")}
    assert unknown == set()


def test_the_configuration_is_one_production_accepts() -> None:
    settings = _settings()

    assert settings.is_production
    assert not settings.is_sqlite


def test_secrets_are_in_the_secret_and_only_settings_are() -> None:
    # Each key becomes a file in SECRETS_DIR, which only these settings are read from.
    assert set(_secret()) <= {name.upper() for name in FILE_SETTINGS}
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(_secret())
    # A setting the app treats as secret never sits in the ConfigMap.
    assert SECRET_SETTINGS & set(_config()) == set()
    assert {"SECRET_KEY", "SMTP_PASSWORD", "METRICS_TOKEN"} <= SECRET_SETTINGS


def test_both_workloads_read_the_configmap_and_mount_the_secret_in_secrets_dir() -> None:
    secrets_dir = _config()["SECRETS_DIR"]
    for workload in WORKLOADS:
        container = _container(workload)
        assert container["envFrom"] == [{"configMapRef": {"name": "groundwork"}}]
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in _pod(workload)["volumes"]}
        mount = mounts[secrets_dir]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "groundwork"
    assert (
        _one("ConfigMap")["metadata"]["name"] == _one("Secret")["metadata"]["name"] == "groundwork"
    )


def test_the_secret_mounted_as_files_gives_the_settings_production_needs(
    tmp_path: Path,
) -> None:
    # As the kubelet lays it out: one file per key, named after it.
    values = {**_secret(), "SECRET_KEY": secrets.token_urlsafe(48)}
    for name, value in values.items():
        (tmp_path / name).write_text(value, encoding="utf-8")
    config: dict[str, Any] = {
        name.lower(): value for name, value in _config().items() if name in SETTING_NAMES
    }
    config["secrets_dir"] = str(tmp_path)

    settings = Settings(_env_file=None, **config)

    assert settings.is_production
    assert settings.secret_key.get_secret_value() == values["SECRET_KEY"]
    assert settings.database_url == values["DATABASE_URL"]
    assert settings.metrics_token == SecretStr(values["METRICS_TOKEN"])


# --- lifecycle ---------------------------------------------------------------------


def test_the_api_serves_the_worker_works_and_the_job_migrates() -> None:
    assert _container(API)["args"] == ["python", "-m", "app", "serve"]
    assert _container(WORKER)["args"] == ["python", "-m", "app", "worker"]
    assert _container(MIGRATE)["args"] == ["python", "-m", "app", "migrate"]
    assert _pod(MIGRATE)["restartPolicy"] == "Never"


def test_the_grace_period_covers_the_drain_and_no_presleep_is_needed() -> None:
    settings = _settings()
    drain = settings.shutdown_drain_seconds
    assert drain is not None
    needed = drain + settings.shutdown_timeout_seconds + SHUTDOWN_FLUSH_SECONDS

    assert _pod(API)["terminationGracePeriodSeconds"] >= needed
    assert "lifecycle" not in _container(API)


def test_one_process_per_container() -> None:
    assert _settings().workers == 1


# --- security and resources ---------------------------------------------------------


@pytest.mark.parametrize("workload", WORKLOADS, ids=["api", "worker", "migrate"])
def test_pods_run_as_the_images_user_on_a_read_only_root(
    workload: tuple[str, str | None],
) -> None:
    pod, container = _pod(workload), _container(workload)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108


@pytest.mark.parametrize("workload", [API, WORKER], ids=["api", "worker"])
def test_the_metrics_directory_is_a_writable_volume(workload: tuple[str, str | None]) -> None:
    pod, container = _pod(workload), _container(workload)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}

    assert str(_settings().prometheus_multiproc_dir) in mounts
    assert "emptyDir" in volumes[mounts[str(_settings().prometheus_multiproc_dir)]]


def test_memory_holds_the_process_and_its_concurrent_password_hashes() -> None:
    settings = _settings()
    resources = _container(API)["resources"]
    hashes = settings.password_hash_concurrency * settings.password_hash_memory_kib / 1024
    needed = settings.workers * (PROCESS_BASELINE_MIB + hashes)

    assert settings.password_hash_memory_kib / 1024 == ARGON2_MIB
    assert _mebibytes(resources["requests"]["memory"]) >= needed
    assert _mebibytes(resources["limits"]["memory"]) >= _mebibytes(resources["requests"]["memory"])


# --- the job worker ----------------------------------------------------------------


async def test_the_workers_probes_hit_its_own_routes_on_its_port(resources: Resources) -> None:
    container = _container(WORKER)
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    probes = [container[name]["httpGet"] for name in PROBES]
    app = probe_app(resources, alive=lambda: True, ready=lambda: True)

    assert [probe["path"] for probe in probes] == ["/health/live", "/health/ready", "/health/live"]
    async with client_for(app) as client:
        for probe in probes:
            assert (await client.get(probe["path"])).status_code == 200
            assert probe["port"] in port_names
    assert set(port_names.values()) == {_settings().worker_port}
    # Inside a pod the probes come from the kubelet, not loopback.
    assert _config()["WORKER_HOST"] == "0.0.0.0"  # noqa: S104


def test_the_workers_grace_period_lets_the_job_in_hand_finish() -> None:
    settings = _settings()
    needed = settings.jobs_timeout_seconds + WORKER_SETTLE_SECONDS + SHUTDOWN_FLUSH_SECONDS

    assert _pod(WORKER)["terminationGracePeriodSeconds"] >= needed


def test_the_worker_is_not_selected_by_the_apis_service_hpa_or_pdb() -> None:
    labels = _one(*WORKER)["spec"]["template"]["metadata"]["labels"]

    for selector in (
        _one("Service")["spec"]["selector"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()
    assert (
        _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"]
        != (_one(*WORKER)["metadata"]["name"])
    )

"""The operator's own settings: flags first, then ``SAGAZ_*`` environment variables.

    SAGAZ_DATABASE_URL            PostgreSQL URL (required), e.g. from a Secret via the chart
    SAGAZ_ALLOWED_HOSTS           participant hosts allowed (comma-separated, ``*.suffix`` ok)
    SAGAZ_ALLOWED_NETWORKS        participant networks allowed (comma-separated CIDRs)
    SAGAZ_ALLOW_LINK_LOCAL        "true" to allow 169.254.0.0/16 (cloud metadata!) targets
    SAGAZ_METRICS_ADDRESS         host:port for /metrics, e.g. 0.0.0.0:8080 (unset: off)
    SAGAZ_API_ADDRESS             host:port of the read-only HTTP API (/api/v1/...) (unset: off)
    SAGAZ_STATUS_INTERVAL         seconds between coalesced status writes per saga (default 1)
    SAGAZ_STATUS_WRITES_PER_SECOND  the process's budget of status writes across its running
                                  sagas: more sagas than that stretch each one's interval
                                  (default 20, as controller-runtime's client QPS)
    SAGAZ_RESYNC_INTERVAL         seconds between checks that every saga's status phase matches
                                  its journal, repairing those that do not (default 60)
    SAGAZ_JOB_STEPS               "disabled" refuses every Job step (default: enabled)
    SAGAZ_JOB_ALLOWED_IMAGES      image globs Job steps may use (comma-separated; unset: any)
    SAGAZ_JOB_ALLOWED_SERVICE_ACCOUNTS  service accounts Job pods may run as (unset: any)
    SAGAZ_JOB_ALLOW_HOST_ACCESS   "true" allows host network/PID/IPC, hostPath, privileged
    SAGAZ_REPLICA_ID              this replica's member id (default: the host name in a pod,
                                  host name and process id elsewhere); the chart sets the pod
    SAGAZ_LEASE_NAMESPACE         where the replicas' member Leases live (default: default;
                                  the chart sets the operator's namespace)
    SAGAZ_LEASE_DURATION          seconds a replica's Lease lasts unrenewed (default 15)
    SAGAZ_LEASE_RENEW             seconds between renewals (default 5; less than the duration)
    SAGAZ_WORKER_IMAGE            image of OutboxWorker pods that name none (the chart sets the
                                  operator's own image)
    SAGAZ_EXTERNAL_METRICS_ADDRESS    host:port of the external metrics API (HTTPS) the
                                  OutboxWorkers' HPAs scale on (unset: off); needs:
    SAGAZ_EXTERNAL_METRICS_CERT_FILE  its serving certificate (PEM), for <service>.<ns>.svc
    SAGAZ_EXTERNAL_METRICS_KEY_FILE   its private key (PEM)
    SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE  the front-proxy client CA (unset: read from the
                                  ConfigMap kube-system/extension-apiserver-authentication)
    SAGAZ_EXTERNAL_METRICS_ALLOWED_NAMES   client certificate common names allowed to proxy
                                  (comma-separated; unset: as that ConfigMap says)
    SAGAZ_EXTERNAL_METRICS_AUTHORIZE  "false" skips the SubjectAccessReview of each read

With no allow-lists every participant host is allowed except link-local addresses.

Traces follow OpenTelemetry's own variables (``services.tracing``): they are exported over OTLP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and off otherwise.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sagaz_operator import __version__, environment
from sagaz_operator.domain import egress, jobs
from sagaz_operator.errors import ConfigError

DEFAULT_WORKER_IMAGE = f"sagaz-operator:{__version__}"


@dataclass(frozen=True, kw_only=True)
class ExternalMetricsSettings:
    """The external metrics API server (``adapters.metrics_api``)."""

    address: tuple[str, int]
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # None: the API server's published requestheader CA
    allowed_names: tuple[str, ...] | None = None  # None: the published allowed names
    authorize: bool = True  # a SubjectAccessReview per read


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str
    egress: egress.EgressPolicy
    metrics_address: tuple[str, int] | None = None
    api_address: tuple[str, int] | None = None
    status_interval: float = 1.0
    status_writes_per_second: float = 20.0
    resync_interval: float = 60.0
    worker_image: str = DEFAULT_WORKER_IMAGE
    job_policy: jobs.JobPolicy = field(default_factory=jobs.JobPolicy)
    external_metrics: ExternalMetricsSettings | None = None
    replica_id: str = "sagaz-operator"
    lease_namespace: str = "default"
    lease_duration: int = 15
    lease_renew: float = 5.0
    #: The namespaces served (empty: the whole cluster); set from the command line.
    scope: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Settings:
        url = env.get("SAGAZ_DATABASE_URL", "")
        if not url:
            raise ConfigError(
                "SAGAZ_DATABASE_URL is not set: the operator needs PostgreSQL "
                "(e.g. postgresql://user:password@host:5432/sagaz)"
            )
        duration, renew = _lease_timing(env)
        return cls(
            database_url=url,
            egress=egress.parse_policy(
                hosts=env.get("SAGAZ_ALLOWED_HOSTS", ""),
                networks=env.get("SAGAZ_ALLOWED_NETWORKS", ""),
                allow_link_local=env.get("SAGAZ_ALLOW_LINK_LOCAL", "").lower() == "true",
            ),
            metrics_address=environment.address(env, "SAGAZ_METRICS_ADDRESS", ""),
            api_address=environment.address(env, "SAGAZ_API_ADDRESS", ""),
            status_interval=_positive(
                "SAGAZ_STATUS_INTERVAL", environment.seconds(env, "SAGAZ_STATUS_INTERVAL", 1.0)
            ),
            status_writes_per_second=_positive_rate(
                "SAGAZ_STATUS_WRITES_PER_SECOND",
                environment.number(env, "SAGAZ_STATUS_WRITES_PER_SECOND", 20.0),
            ),
            resync_interval=_positive(
                "SAGAZ_RESYNC_INTERVAL", environment.seconds(env, "SAGAZ_RESYNC_INTERVAL", 60.0)
            ),
            worker_image=env.get("SAGAZ_WORKER_IMAGE") or DEFAULT_WORKER_IMAGE,
            job_policy=_job_policy(env),
            external_metrics=_external_metrics(env),
            replica_id=env.get("SAGAZ_REPLICA_ID") or _default_replica_id(env),
            lease_namespace=env.get("SAGAZ_LEASE_NAMESPACE") or "default",
            lease_duration=duration,
            lease_renew=renew,
        )


def _external_metrics(env: Mapping[str, str]) -> ExternalMetricsSettings | None:
    address = environment.address(env, "SAGAZ_EXTERNAL_METRICS_ADDRESS", "")
    if address is None:
        return None
    files = {}
    for name in ("SAGAZ_EXTERNAL_METRICS_CERT_FILE", "SAGAZ_EXTERNAL_METRICS_KEY_FILE"):
        if not env.get(name, "").strip():
            raise ConfigError(f"SAGAZ_EXTERNAL_METRICS_ADDRESS is set, so {name} must be too")
        files[name] = Path(env[name].strip())
        if not files[name].is_file():
            raise ConfigError(f"{name}: no file {files[name]}")
    ca = env.get("SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE", "").strip()
    if ca and not Path(ca).is_file():
        raise ConfigError(f"SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE: no file {ca}")
    names = env.get("SAGAZ_EXTERNAL_METRICS_ALLOWED_NAMES")
    authorize = env.get("SAGAZ_EXTERNAL_METRICS_AUTHORIZE", "true").strip().lower()
    if authorize not in ("true", "false"):
        raise ConfigError(
            f"SAGAZ_EXTERNAL_METRICS_AUTHORIZE must be true or false, not {authorize!r}"
        )
    return ExternalMetricsSettings(
        address=address,
        cert_file=files["SAGAZ_EXTERNAL_METRICS_CERT_FILE"],
        key_file=files["SAGAZ_EXTERNAL_METRICS_KEY_FILE"],
        client_ca_file=Path(ca) if ca else None,
        allowed_names=None
        if names is None
        else environment.items(env, "SAGAZ_EXTERNAL_METRICS_ALLOWED_NAMES"),
        authorize=authorize == "true",
    )


def _default_replica_id(env: Mapping[str, str]) -> str:
    """The pod's name in a pod (stable across container restarts, so a restarted replica takes
    back its own Lease at once); elsewhere host and pid, so local processes differ."""
    host = socket.gethostname()
    return host if env.get("KUBERNETES_SERVICE_HOST") else f"{host}-{os.getpid()}"


def _lease_timing(env: Mapping[str, str]) -> tuple[int, float]:
    duration = environment.whole_number(env, "SAGAZ_LEASE_DURATION", 15)
    renew = environment.seconds(env, "SAGAZ_LEASE_RENEW", 5.0)
    if not 0 < renew < duration:
        raise ConfigError(
            f"SAGAZ_LEASE_RENEW ({renew}s) must be more than 0 and less than "
            f"SAGAZ_LEASE_DURATION ({duration}s)"
        )
    return duration, renew


def _job_policy(env: Mapping[str, str]) -> jobs.JobPolicy:
    switch = env.get("SAGAZ_JOB_STEPS", "enabled").lower()
    if switch not in ("enabled", "disabled"):
        raise ConfigError(f"SAGAZ_JOB_STEPS must be enabled or disabled, not {switch!r}")
    return jobs.JobPolicy(
        enabled=switch == "enabled",
        allowed_images=environment.items(env, "SAGAZ_JOB_ALLOWED_IMAGES"),
        allowed_service_accounts=environment.items(env, "SAGAZ_JOB_ALLOWED_SERVICE_ACCOUNTS"),
        allow_host_access=env.get("SAGAZ_JOB_ALLOW_HOST_ACCESS", "").lower() == "true",
    )


def _positive_rate(name: str, rate: float) -> float:
    if not rate > 0:
        raise ConfigError(f"{name} must be more than 0 a second, not {rate}")
    return rate


def _positive(name: str, interval: float) -> float:
    if not interval > 0:
        raise ConfigError(f"{name} must be more than 0 seconds, not {interval}")
    return interval

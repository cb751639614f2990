"""Console entry points: ``sagaz-operator`` and ``sagaz-outbox-worker``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

import kopf
import prometheus_client

from sagaz_operator import logs
from sagaz_operator.config import Settings
from sagaz_operator.errors import ConfigError
from sagaz_operator.services import runtime, tracing

#: Python's recursion limit for the operator. The apiserver stores JSON nested up to 10,000
#: levels (Go's decoder stops there), and Python's json module needs one level of its
#: recursion limit per level of nesting: at the default 1,000, one deeply nested Saga made
#: Kopf's watch fail to parse the list, and the whole operator stop, for every object.
#: Nesting is then judged per saga (``domain.storable.MAX_DEPTH``): that saga is rejected.
RECURSION_LIMIT = 25_000


def _operator_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sagaz-operator",
        description="Run the Sagaz operator (Kopf) against the current kubeconfig or in-cluster.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="serve only this namespace (repeatable; globs as in Kopf)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="serve the whole cluster",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="do not take part in Kopf peering (run alone, e.g. in development)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve Kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--migrate-only",
        action="store_true",
        help="apply the database migrations and exit (e.g. from a Helm hook)",
    )
    _logging_arguments(parser)
    return parser.parse_args(argv)


def _logging_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=("plain", "json"),
        default="plain",
        help="json: one JSON object per line, for log pipelines",
    )


def operator_main(argv: Sequence[str] | None = None) -> None:
    args = _operator_arguments(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    logs.configure(verbose=args.verbose, json_format=args.log_format == "json")
    try:
        settings = Settings.from_environment()
        asyncio.run(runtime.check_database(settings.database_url))
        if settings.external_metrics is not None and not args.migrate_only:
            asyncio.run(runtime.check_external_metrics(settings.external_metrics))
        if args.migrate_only:
            applied = asyncio.run(runtime.migrate(settings.database_url))
            print(f"sagaz-operator: migrations applied: {', '.join(applied) or 'none needed'}")
            return
        tracer = tracing.from_environment(os.environ)
    except ConfigError as error:
        print(f"sagaz-operator: {error}", file=sys.stderr)
        sys.exit(2)
    if settings.metrics_address is not None:
        host, port = settings.metrics_address
        prometheus_client.start_http_server(port, addr=host)
    # Importing the handlers registers them with Kopf's default registry.
    from sagaz_operator import handlers  # noqa: F401

    namespaces = args.namespaces or []
    # Replicas serving the same namespaces share the sagas (services.membership).
    settings = dataclasses.replace(settings, scope=tuple(namespaces))
    kopf.run(
        standalone=args.standalone,
        clusterwide=args.all_namespaces or not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(runtime=runtime.Runtime(settings, tracer=tracer)),
    )


def outbox_worker_main(argv: Sequence[str] | None = None) -> None:
    from sagaz_operator.services import relay, relay_config

    parser = argparse.ArgumentParser(
        prog="sagaz-outbox-worker",
        description="Publish an outbox table to Kafka, in order per aggregate (one worker of "
        "an OutboxWorker). Configured by environment variables:",
        epilog=relay_config.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _logging_arguments(parser)
    args = parser.parse_args(argv)
    logs.configure(verbose=args.verbose, json_format=args.log_format == "json")
    if not args.verbose:
        # aiokafka logs every reconnect attempt (many a second in an outage) as an error; the
        # relay reports outages itself, so its own logs are for --verbose.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = relay_config.RelaySettings.from_environment()
        asyncio.run(relay.main(settings))
    except ConfigError as error:
        print(f"sagaz-outbox-worker: {error}", file=sys.stderr)
        sys.exit(2)

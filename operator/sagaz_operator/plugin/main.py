"""``kubectl sagaz`` commands: argument parsing, and one function per command.

Exit codes: 0 done; 1 the command failed (an unknown saga, an unreachable API, a refused
lever, an invalid definition); 2 wrong usage (argparse's own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sagaz_operator.domain import definitions
from sagaz_operator.errors import DefinitionError
from sagaz_operator.plugin import render
from sagaz_operator.plugin.connection import Kube, PluginError, ReadApi, Target

TERMINAL = ("Succeeded", "Compensated", "CompensationFailed", "Failed")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        sys.exit(2)
    try:
        code = args.run(args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


# -- commands -------------------------------------------------------------------------------


def _get(args: argparse.Namespace) -> int:
    api = _read_api(args)
    now = datetime.now(UTC)
    if args.name:
        saga = api.get(api.saga_path(args.name))
        print(
            json.dumps(saga, indent=2) if args.output == "json" else render.saga_tree(saga, now=now)
        )
        return 0
    path = "/api/v1/sagas" if args.all_namespaces else api.saga_path("").rstrip("/")
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = api.get(
            path,
            phase=args.phase,
            definition=args.definition,
            allRuns="true" if args.all_runs else None,
            limit=500,
            **{"continue": token},
        )
        items += page["items"]
        token = page["continue"]
        if token is None or (args.limit and len(items) >= args.limit):
            break
    if args.limit:
        items = items[: args.limit]
    if args.output == "json":
        print(json.dumps(items, indent=2))
    elif not items:
        print("No sagas found.", file=sys.stderr)
    else:
        print(render.saga_list(items, namespaces=args.all_namespaces, now=now))
    return 0


def _history(args: argparse.Namespace) -> int:
    api = _read_api(args)
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = api.get(api.saga_path(args.name) + "/history", limit=500, **{"continue": token})
        items += page["items"]
        token = page["continue"]
        if token is None:
            break
    print(json.dumps(items, indent=2) if args.output == "json" else render.history(items))
    return 0


def _graph(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.definition is None):
        raise PluginError("name a saga, or a SagaDefinition with --definition (not both)")
    phases: dict[str, str] = {}
    if args.definition:
        kube = _kube(args)
        body = kube.get_object("sagadefinitions", args.definition)
        spec, title = body.get("spec") or {}, f"SagaDefinition {args.definition}"
    else:
        api = _read_api(args)
        spec = api.get(api.saga_path(args.name) + "/definition")["spec"]
        status = api.get(api.saga_path(args.name))["status"]
        phases = {step["name"]: step["phase"] for step in status.get("steps") or []}
        title = f"Saga {args.name}: {status['phase']}"
    try:
        definition = definitions.load(spec)
    except DefinitionError as error:
        raise PluginError(f"the definition is invalid: {error}") from None
    draw = render.dot if args.output == "dot" else render.mermaid
    print(draw(title, definition, phases))
    return 0


def _validate(args: argparse.Namespace) -> int:
    path = Path(args.filename)
    try:
        text = sys.stdin.read() if args.filename == "-" else path.read_text()
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
    except OSError as error:
        raise PluginError(f"cannot read {args.filename}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PluginError(f"{args.filename} is not YAML: {error}") from None
    checked, failed = 0, 0
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "?")
        spec = doc.get("spec") or {}
        if kind == "Saga" and "definition" in spec:
            spec, where = spec["definition"], "spec.definition"
        elif kind == "SagaDefinition":
            where = "spec"
        else:
            continue
        checked += 1
        try:
            definition = definitions.load(spec, path=where)
        except DefinitionError as error:
            failed += 1
            print(f"{kind.lower()}/{name}: invalid: {error}")
            continue
        print(f"{kind.lower()}/{name}: valid ({len(definition.steps)} steps)")
    if not checked:
        raise PluginError(
            f"{args.filename} holds no SagaDefinition (nor a Saga with an inline one)"
        )
    return 1 if failed else 0


def _lever(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        kube = _kube(args)
        if name == "retry":
            return _retry(kube, args)
        value = name != "resume"
        field = "abort" if name == "abort" else "suspend"
        saga = kube.saga(args.name)
        _patch(kube, args.name, {"spec": {field: value}})
        print(f"saga.sagaz.io/{args.name} {name.removesuffix('e')}ed")
        if not args.wait:
            return _refused(kube, args.name, field, since=saga)
        done: Callable[[dict[str, Any]], bool] = {
            "suspend": lambda s: _phase(s) in ("Suspended", *TERMINAL),
            "resume": lambda s: _phase(s) != "Suspended",
            "abort": lambda s: _phase(s) in TERMINAL,
        }[name]
        final = _wait(kube, args.name, done, args.timeout)
        print(f"saga.sagaz.io/{args.name} is {_phase(final)}")
        return _refused(kube, args.name, field, since=saga)

    return run


def _retry(kube: Kube, args: argparse.Namespace) -> int:
    saga = kube.saga(args.name)
    request = int((saga.get("spec") or {}).get("retry") or 0) + 1
    patch = {
        "metadata": {"resourceVersion": saga["metadata"]["resourceVersion"]},
        "spec": {"retry": request},
    }
    _patch(kube, args.name, patch)
    print(f"saga.sagaz.io/{args.name} retry {request} requested")
    acknowledged = _wait(
        kube,
        args.name,
        lambda s: int((s.get("status") or {}).get("observedRetry") or 0) >= request,
        args.timeout,
    )
    refusal = _condition(acknowledged, "LeverRefused")
    if refusal and refusal.get("status") == "True" and refusal.get("reason") == "RetryRefused":
        raise PluginError(f"retry refused: {refusal.get('message')}")
    if not args.wait:
        return 0
    final = _wait(kube, args.name, lambda s: _phase(s) in TERMINAL, args.timeout)
    print(f"saga.sagaz.io/{args.name} is {_phase(final)}")
    return 0 if _phase(final) in ("Succeeded", "Compensated") else 1


# -- helpers --------------------------------------------------------------------------------


def _patch(kube: Kube, name: str, patch: dict[str, Any]) -> None:
    response = kube.patch_saga(name, patch)
    if response.status_code == 404:
        raise PluginError(f'saga "{name}" not found in namespace {kube.namespace}')
    if response.status_code == 409:
        raise PluginError(f"saga {name} changed meanwhile; try again")
    if not response.is_success:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise PluginError(f"the Kubernetes API refused the change: {message}")


def _wait(
    kube: Kube, name: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        saga = kube.saga(name)
        if done(saga):
            return saga
        if time.monotonic() > deadline:
            raise PluginError(f"saga {name} is still {_phase(saga)} after {timeout:g}s")
        time.sleep(0.5)


def _refused(kube: Kube, name: str, field: str, *, since: dict[str, Any]) -> int:
    """1 with the operator's message if it refused the lever, after a short look."""
    if _phase(since) not in TERMINAL:
        return 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        condition = _condition(kube.saga(name), "LeverRefused")
        before = _condition(since, "LeverRefused")
        if (
            condition
            and condition.get("reason") == f"{field.capitalize()}Refused"
            and (condition != before)
        ):
            print(f"error: refused: {condition.get('message')}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0


def _phase(saga: dict[str, Any]) -> str:
    return str((saga.get("status") or {}).get("phase") or "Pending")


def _condition(saga: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (saga.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            found: dict[str, Any] = condition
            return found
    return None


def _target(args: argparse.Namespace) -> Target:
    return Target(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        api=args.api,
        api_service=args.api_service,
    )


def _kube(args: argparse.Namespace) -> Kube:
    return Kube(_target(args))


def _read_api(args: argparse.Namespace) -> ReadApi:
    target = _target(args)
    kube = None
    if not (target.api or _env_api()) or not target.namespace:
        try:
            kube = Kube(target)  # for the namespace of the context, and the service proxy
        except PluginError:
            if not (target.api or _env_api()):
                raise
    return ReadApi(target, kube)


def _env_api() -> str:
    import os

    return os.environ.get("SAGAZ_API_URL", "")


# -- arguments ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    common.add_argument("--context", help="the kubeconfig context to use")
    common.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG)")
    common.add_argument(
        "--api",
        metavar="URL",
        help="the operator's read API (default: $SAGAZ_API_URL, else "
        "the chart's Service through the apiserver's service proxy)",
    )
    common.add_argument(
        "--api-service",
        metavar="NAMESPACE/NAME",
        help="the read API's Service, if not found by its labels",
    )
    parser = argparse.ArgumentParser(
        prog="kubectl sagaz",
        description="Inspect and steer Sagaz sagas: their steps, journal and DAG; retry, "
        "suspend, resume and abort them; check definitions offline.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    get = commands.add_parser(
        "get", parents=[common], help="list sagas, or show one as a tree of its steps"
    )
    get.add_argument("name", nargs="?", help="a saga: show its steps")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="list every namespace")
    get.add_argument("--phase", help="only sagas in this phase, e.g. CompensationFailed")
    get.add_argument("--definition", help="only sagas of this SagaDefinition")
    get.add_argument("--limit", type=int, default=0, help="show at most this many")
    get.add_argument(
        "--all-runs",
        action="store_true",
        help="also earlier runs of a name (deleted sagas stay in the journal)",
    )
    get.add_argument("-o", "--output", choices=("wide", "json"), default="wide")
    get.set_defaults(run=_get)

    history = commands.add_parser("history", parents=[common], help="a saga's journal, in order")
    history.add_argument("name", help="the saga")
    history.add_argument("-o", "--output", choices=("table", "json"), default="table")
    history.set_defaults(run=_history)

    graph = commands.add_parser(
        "graph", parents=[common], help="a saga's DAG with each step's phase, or a definition's"
    )
    graph.add_argument("name", nargs="?", help="the saga")
    graph.add_argument("--definition", metavar="NAME", help="a SagaDefinition instead of a saga")
    graph.add_argument("-o", "--output", choices=("mermaid", "dot"), default="mermaid")
    graph.set_defaults(run=_graph)

    for name, text in (
        ("retry", "retry a CompensationFailed saga (or a Failed one past its Pivot)"),
        ("suspend", "start no new steps (in-flight ones finish)"),
        ("resume", "undo suspend"),
        ("abort", "stop and compensate what ran"),
    ):
        lever = commands.add_parser(name, parents=[common], help=text, description=text)
        lever.add_argument("name", help="the saga")
        lever.add_argument("--wait", action="store_true", help="wait for the outcome")
        lever.add_argument(
            "--timeout", type=float, default=300, help="seconds to wait (default 300)"
        )
        lever.set_defaults(run=_lever(name))

    validate = commands.add_parser(
        "validate", help="check SagaDefinitions offline, with the operator's own checks"
    )
    validate.add_argument("-f", "--filename", required=True, help="a YAML file ('-': stdin)")
    validate.set_defaults(run=_validate)
    return parser

"""Shell completion for ``kubectl sagaz``, the way kubectl completes plugins (kubectl ≥ 1.26).

kubectl runs ``kubectl_complete-sagaz <args...> <partial word>`` and reads one candidate per
line, then ``:<directive>`` (cobra's protocol: 4 = no file names, 0 = the shell's default,
which completes file names). Saga and SagaDefinition names come from the apiserver with the
same ``-n`` / ``--context`` / ``--kubeconfig`` as the command line; any error simply
completes nothing, so a completion can never print a traceback into the shell.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sagaz_operator.plugin.connection import Kube, PluginError, Target

COMMANDS = ("get", "history", "graph", "retry", "suspend", "resume", "abort", "validate")
_COMMON = ("--namespace", "--context", "--kubeconfig", "--api", "--api-service")
FLAGS = {
    "get": (
        *_COMMON,
        "--all-namespaces",
        "--all-runs",
        "--phase",
        "--definition",
        "--limit",
        "--output",
    ),
    "history": (*_COMMON, "--output"),
    "graph": (*_COMMON, "--definition", "--output"),
    "validate": ("--filename",),
    **{
        lever: (*_COMMON, "--wait", "--timeout")
        for lever in ("retry", "suspend", "resume", "abort")
    },
}
_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "--output": {
        "get": ("wide", "json"),
        "history": ("table", "json"),
        "graph": ("mermaid", "dot"),
    },
    "-o": {"get": ("wide", "json"), "history": ("table", "json"), "graph": ("mermaid", "dot")},
    "--phase": {
        "get": (
            "Pending",
            "Running",
            "Suspended",
            "Compensating",
            "Succeeded",
            "Compensated",
            "CompensationFailed",
            "Failed",
        )
    },
}
NO_FILES, FILES = ":4", ":0"


def candidates(args: Sequence[str]) -> tuple[list[str], str]:
    """Completions of the last word of ``args`` (the words after ``kubectl sagaz``)."""
    *words, partial = args or [""]
    if not words:
        return [c for c in COMMANDS if c.startswith(partial)], NO_FILES
    command, previous = words[0], words[-1]
    if command not in COMMANDS:
        return [], NO_FILES
    if previous in ("-f", "--filename"):
        return [], FILES
    if previous in _VALUES:
        values = _VALUES[previous].get(command, ())
        return [v for v in values if v.startswith(partial)], NO_FILES
    if partial.startswith("-"):
        return [f for f in FLAGS[command] if f.startswith(partial)], NO_FILES
    names: list[str] = []
    try:
        kube = Kube(_target(words))
        if previous in ("-n", "--namespace"):
            body: dict[str, Any] = kube.request("GET", "/api/v1/namespaces").json()
            names = [item["metadata"]["name"] for item in body.get("items", [])]
        elif command == "graph" and previous == "--definition":
            names = kube.names("sagadefinitions")
        elif command != "validate" and not _has_name(words[1:]):
            names = kube.names("sagas")
    except (PluginError, ValueError, KeyError):
        names = []
    return [n for n in names if n.startswith(partial)], NO_FILES


def main(argv: Sequence[str] | None = None) -> None:
    found, directive = candidates(list(sys.argv[1:] if argv is None else argv))
    with contextlib.suppress(BrokenPipeError):
        print("\n".join([*found, directive]))


def _target(words: Sequence[str]) -> Target:
    values = {"--namespace" if flag == "-n" else flag: value for flag, value in pairwise(words)}
    return Target(
        kubeconfig=values.get("--kubeconfig"),
        context=values.get("--context"),
        namespace=values.get("--namespace"),
        api=None,
        api_service=None,
    )


def _has_name(words: Sequence[str]) -> bool:
    """Whether a positional word (not a flag, nor a flag's value) is already there."""
    takes_value = {
        "-n",
        "--namespace",
        "--context",
        "--kubeconfig",
        "--api",
        "--api-service",
        "--phase",
        "--definition",
        "--limit",
        "-o",
        "--output",
        "--timeout",
    }
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in takes_value:
            skip = True
        elif not word.startswith("-"):
            return True
    return False

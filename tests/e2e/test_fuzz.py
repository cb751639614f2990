"""Hostile manifests against the real apiserver and operator: nothing wedges, nothing is lost.

Hypothesis generates Sagas and SagaDefinitions two ways: from the CRDs' own schemas
(``hypothesis-jsonschema`` over crds/*.yaml, so every field is tried, including the ones the
schema leaves open), and as well-formed sagas whose input, bodies, URLs and participant answers
are hostile: NUL characters, lone surrogates, strings of a megabyte, deep nesting, numbers at
and past every limit, link-local and cloud-metadata URLs. Each manifest is either refused by
the apiserver, or ends in a terminal phase (a Saga) or gets a ``Ready`` condition (a
SagaDefinition), with a message when it failed. Afterwards the operator is the same process,
and a plain saga still succeeds. No link-local or metadata address is ever called: every step
aimed at one fails with the egress guard's refusal.

To bound the run (< 60 s), the generated durations, attempts and step counts are clamped in the
schema before generation (longer ones are not tried here), and the example count is fixed. The
run is derandomized, but the manifests hold the participant server's random port, so they are
not the same every time; ``SAGAZ_FUZZ_RANDOM=1`` draws fresh ones, and ``SAGAZ_FUZZ_EXAMPLES``
sets how many.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness import stack
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond, refused_url
from harness.sagas import Sagas
from sagaz_operator.api.definition import GROUP, VERSION

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("SAGAZ_FUZZ_EXAMPLES", "60"))
RANDOM = bool(os.environ.get("SAGAZ_FUZZ_RANDOM"))

#: Targets the egress guard must refuse; nothing listens there, and nothing may try.
FORBIDDEN_URLS = (
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.0.1:8080/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "https://169.254.169.254/computeMetadata/v1/",
)
REFUSAL_HINT = "--allow-link-local"


def _aims_at_forbidden(action: Any) -> bool:
    text = json.dumps(action)
    return any(url in text for url in FORBIDDEN_URLS)


#: Participant paths and how they answer.
ANSWERS = ("/ok", "/nul", "/surrogate", "/huge", "/deep", "/nan", "/text", "/400", "/500")

HOSTILE_STRINGS = st.sampled_from(
    [
        "\u0000",
        "a\u0000b",
        "\ud800",
        "\udfff tail",
        "\ufeff\uffff\u202e",
        "${input.nope}",
        "${steps.x.output.y}",
        "x" * 300_000,
        "é" * 10_000,
    ]
)
HOSTILE_NUMBERS = st.sampled_from(
    [0, -1, 2**31, 2**53 + 1, 2**63, -(2**63), 2**64, 10**30, 1e308, -0.0, 5e-324]
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for index in range(depth):
        value = {"n": value} if index % 2 else [value]
    return value


def hostile_json() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        HOSTILE_NUMBERS,
        st.text(max_size=20),
        HOSTILE_STRINGS,
        st.sampled_from([_nested(70), _nested(150)]),
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(max_size=8) | HOSTILE_STRINGS.map(lambda s: s[:40]), inner, max_size=4
            )
        ),
        max_leaves=12,
    )


# -- schemas from the CRDs, clamped -----------------------------------------------------------


def _crd_spec_schema(file: str) -> dict[str, Any]:
    document = yaml.safe_load((stack.REPO_ROOT / "crds" / file).read_text())
    schema = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return _clamped(copy.deepcopy(schema))


def _clamped(schema: Any, name: str = "") -> Any:
    """The schema without Kubernetes extensions, and with durations and counts kept small."""
    if isinstance(schema, list):
        return [_clamped(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default", "nullable"):
            continue
        if key == "properties":
            value = {
                prop: _clamped(sub, prop)
                for prop, sub in value.items()
                # suspend would park the saga for ever; a TTL would delete it before we look.
                if prop not in ("suspend", "ttlSecondsAfterFinished")
            }
        else:
            value = _clamped(value, name)
        result[key] = value
    small = name.endswith("Seconds") or name in ("maxAttempts", "factor", "backoffLimit")
    if small and schema.get("type") in ("integer", "number"):
        result["maximum"] = min(result.get("maximum", 2), 2)
    if name == "steps":
        result["maxItems"] = 3
    if name in ("headers", "headersFrom"):
        result["maxItems" if name == "headersFrom" else "maxProperties"] = 2
    if schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema:
        result = {}  # any JSON
    return result


# -- manifests ----------------------------------------------------------------------------------


def _retarget(value: Any, urls: list[str]) -> Any:
    """Every ``url`` in ``value`` replaced by the next of ``urls`` (cycled)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                out[key] = urls[len(out) % len(urls)]
            else:
                out[key] = _retarget(item, urls)
        return out
    if isinstance(value, list):
        return [_retarget(item, urls) for item in value]
    return value


def manifests(server: ParticipantServer) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    saga_schema = _crd_spec_schema("sagaz.io_sagas.yaml")
    definition_schema = _crd_spec_schema("sagaz.io_sagadefinitions.yaml")
    urls = st.lists(
        st.sampled_from(ANSWERS).map(server.url)
        | st.sampled_from(FORBIDDEN_URLS)
        | st.just(refused_url("/gone")),
        min_size=1,
        max_size=3,
    )
    fast = {"maxAttempts": 2, "backoff": {"initialSeconds": 0.1, "factor": 1, "maxSeconds": 0.2}}

    @st.composite
    def well_formed(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
        # The first step always calls a participant, whose answer may be hostile too.
        targets = [server.url(draw(st.sampled_from(ANSWERS))), *draw(urls)][:3]
        steps = []
        for index, url in enumerate(targets):
            step: dict[str, Any] = {
                "name": f"s{index}",
                "action": {"http": {"url": url, "method": draw(st.sampled_from(["POST", "PUT"]))}},
                "compensation": {"http": {"url": server.url("/ok")}},
            }
            if index:
                step["dependsOn"] = [f"s{index - 1}"]
            if draw(st.booleans()):
                step["action"]["http"]["body"] = draw(hostile_json())
            steps.append(step)
        definition = {
            "timeoutSeconds": 20,
            "defaults": {"timeoutSeconds": 3, "retry": fast},
            "compensationRetry": fast,
            "steps": steps,
        }
        # Half the inputs carry a hostile string for sure; the rest may, anywhere.
        saga_input = draw(
            hostile_json()
            | st.fixed_dictionaries({"data": hostile_json(), "note": HOSTILE_STRINGS})
        )
        return "sagas", {"definition": definition, "input": saga_input}

    @st.composite
    def from_crd(
        draw: st.DrawFn, schema: dict[str, Any], plural: str
    ) -> tuple[str, dict[str, Any]]:
        return plural, _retarget(draw(from_schema(schema)), draw(urls))

    return st.one_of(
        well_formed(),
        from_crd(saga_schema, "sagas"),
        from_crd(definition_schema, "sagadefinitions"),
    )


# -- the test -----------------------------------------------------------------------------------


def ready(item: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (item.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


async def test_hostile_manifests_are_refused_or_end_with_a_message(
    k8s: ApiClient,
    sagas: Sagas,
    operator: OperatorProcess,
    participants: ParticipantServer,
) -> None:
    answers: dict[str, Any] = {
        "/ok": Respond(json={"ok": True}),
        "/nul": Respond(body=b'{"v": "\\u0000"}', headers={"Content-Type": "application/json"}),
        "/surrogate": Respond(body=b'{"v": "\\udc00"}'),
        "/huge": Respond(json={"blob": "h" * 700_000}),
        "/deep": Respond(body=b"[" * 100_000 + b"]" * 100_000),
        "/nan": Respond(body=b'{"v": NaN}'),
        "/text": Respond(body=b"\x00\xff not json"),
        "/400": Fail(400, json={"error": "bad \u0000 " + "e" * 50_000}),
        "/500": Fail(500),
    }
    for path, answer in answers.items():
        participants.on(path, answer)
    assert operator.process is not None
    pid = operator.process.pid
    custom = client.CustomObjectsApi(k8s)
    created: dict[str, list[str]] = {"sagas": [], "sagadefinitions": []}
    tried: Counter[str] = Counter()
    forbidden: dict[str, set[str]] = {}  # saga -> its steps aimed at forbidden URLs

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    @given(manifest=manifests(participants))
    def submit(manifest: tuple[str, dict[str, Any]]) -> None:
        plural, spec = manifest
        kind = "Saga" if plural == "sagas" else "SagaDefinition"
        name = f"fz-{sum(tried.values())}"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
        body["spec"] = spec
        tried[plural] += 1
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, sagas.namespace, plural, body)
        except (ApiException, ValueError) as refused:  # ValueError: not even JSON (NaN...)
            status = getattr(refused, "status", 400)
            assert 400 <= status < 500, f"{name}: the apiserver answered {status}"
            tried["refused"] += 1
            return
        except RecursionError:  # too deep for the client to serialise: never sent
            tried["unsendable"] += 1
            return
        created[plural].append(name)
        steps = ((spec.get("definition") or {}).get("steps") or []) if plural == "sagas" else []
        aimed = {
            str(step.get("name"))
            for step in steps
            if isinstance(step, dict) and _aims_at_forbidden(step.get("action"))
        }
        if aimed:
            forbidden[name] = aimed

    await asyncio.to_thread(submit)

    phases = await sagas.wait_all(created["sagas"], within=60) if created["sagas"] else {}
    for name in created["sagadefinitions"]:
        await sagas.wait_for(
            lambda d, name=name: d["metadata"]["name"] == name and ready(d) is not None,
            plural="sagadefinitions",
            within=30,
        )
    for name, phase in phases.items():
        saga = await sagas.get(name)
        if phase != "Succeeded":
            assert saga["status"]["message"], f"{name} ended {phase} without a message"
        for step in saga["status"].get("steps") or []:
            if step["name"] in forbidden.get(name, ()):
                # Never called: not succeeded, and refused by the guard if it was tried at all.
                assert step["phase"] != "Succeeded", (name, step)
                error = step.get("error") or ""
                assert not error or REFUSAL_HINT in error or "${" in error, (name, step)
    for name in created["sagadefinitions"]:
        condition = ready(await sagas.get(name, plural="sagadefinitions"))
        assert condition is not None
        assert condition["message"], name

    assert operator.process.pid == pid
    assert operator.process.poll() is None, "the operator exited"
    await sagas.start(
        "after-fuzz",
        {
            "definition": {
                "steps": [{"name": "a", "action": {"http": {"url": participants.url("/ok")}}}]
            }
        },
    )
    assert (await sagas.wait("after-fuzz", within=30))["status"]["phase"] == "Succeeded"
    outcome = Counter(phases.values())
    print(
        f"\nfuzz: tried {dict(tried)}; sagas ended {dict(outcome)}; "
        f"{len(created['sagadefinitions'])} definitions judged; "
        f"{len(forbidden)} sagas aimed at link-local/metadata URLs"
    )

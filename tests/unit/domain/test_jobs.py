"""Job participants decided purely: names, manifests, outcomes, outputs, the pod policy."""

from __future__ import annotations

from typing import Any

import pytest

from sagaz_operator.domain import jobs
from sagaz_operator.domain.model import Attempt, JobCall

UID = "0b515e1b-afd9-40aa-8a21-9efe3eda7212"


def attempt(**fields: Any) -> Attempt:
    defaults: dict[str, Any] = {
        "namespace": "ns",
        "saga_name": "s",
        "saga_uid": UID,
        "step": "pack",
        "purpose": "action",
        "number": 1,
    }
    return Attempt(**(defaults | fields))


def test_names_are_deterministic_per_attempt_and_fit_63_characters() -> None:
    long = "x" * 63
    first = jobs.name(attempt(saga_name=long, step=long))

    assert first == jobs.name(attempt(saga_name=long, step=long))
    assert first != jobs.name(attempt(saga_name=long, step=long, number=2))
    assert first != jobs.name(attempt(saga_name=long, step=long, purpose="compensation"))
    assert len(jobs.name(attempt(saga_name=long, step=long, number=1000))) <= 63


def test_manifest_labels_env_and_owner() -> None:
    call = JobCall(template={"spec": {"containers": [{"name": "c", "image": "i:1"}]}})

    body = jobs.manifest(
        call,
        attempt=attempt(number=2),
        saga_input={"a": 1},
        outputs={"prev": {"b": 2}},
    )

    pod = body["spec"]["template"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["sagaz.io/saga-uid"] == UID
    assert env["SAGA_OUTPUTS"] == '{"prev": {"b": 2}}'
    assert env["SAGA_ATTEMPT"] == "2"
    assert body["metadata"]["ownerReferences"][0]["uid"] == UID
    assert "env" not in call.template["spec"]["containers"][0]  # the definition is untouched


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], None),
        ([{"type": "Complete", "status": "True"}], jobs.Outcome(succeeded=True)),
        (
            [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "m"}],
            jobs.Outcome(succeeded=False, reason="DeadlineExceeded", message="m"),
        ),
        ([{"type": "Complete", "status": "False"}], None),
    ],
)
def test_outcome_follows_the_job_conditions(
    conditions: list[dict[str, str]], expected: jobs.Outcome | None
) -> None:
    assert jobs.outcome({"status": {"conditions": conditions}}) == expected


@pytest.mark.parametrize(("message", "output"), [(None, None), ("", None), ('{"a": 1}', {"a": 1})])
def test_output_is_the_termination_message_json(message: str | None, output: Any) -> None:
    assert jobs.output(message) == output


def test_output_that_is_not_json_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="termination message is not JSON"):
        jobs.output("done!")


POLICY = jobs.JobPolicy(allowed_images=("registry.local/*",), allowed_service_accounts=("runner",))


@pytest.mark.parametrize(
    ("pod", "problem"),
    [
        ({"hostNetwork": True}, "template.spec.hostNetwork is not allowed"),
        ({"hostPID": True}, "template.spec.hostPID is not allowed"),
        (
            {"volumes": [{"name": "v", "hostPath": {"path": "/"}}]},
            "template.spec.volumes[0].hostPath is not allowed",
        ),
        (
            {
                "containers": [
                    {
                        "name": "c",
                        "image": "registry.local/a:1",
                        "securityContext": {"privileged": True},
                    }
                ]
            },
            "template.spec.containers[0].securityContext.privileged is not allowed",
        ),
        (
            {"containers": [{"name": "c", "image": "docker.io/evil:1"}]},
            "template.spec.containers[0].image 'docker.io/evil:1' is not in the allowed images",
        ),
        (
            {"serviceAccountName": "admin"},
            "template.spec.serviceAccountName 'admin' is not allowed",
        ),
        (
            {"serviceAccountName": "", "serviceAccount": "admin"},  # the deprecated alias
            "template.spec.serviceAccount 'admin' is not allowed",
        ),
    ],
)
def test_policy_refuses_with_the_field(pod: dict[str, Any], problem: str) -> None:
    template = {
        "spec": {
            "serviceAccountName": "runner",
            "containers": [{"name": "c", "image": "registry.local/a:1"}],
            **pod,
        }
    }

    assert problem in jobs.policy_problems(template, POLICY)


def test_policy_allows_a_plain_pod_and_host_access_when_told() -> None:
    template = {"spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "x:1"}]}}

    assert jobs.policy_problems(template, jobs.JobPolicy(allow_host_access=True)) == []
    assert jobs.policy_problems(template, jobs.JobPolicy(enabled=False)) == [
        "Job steps are disabled by the operator's settings (SAGAZ_JOB_STEPS)"
    ]

"""The HTTP participant adapter against a real HTTP server on loopback.

Every call goes over a real socket to ``harness.participants.ParticipantServer``; only Secrets
and DNS answers are stand-ins (the Kubernetes adapter and the system resolver are tested
elsewhere), so these tests need no cluster and contact nothing but 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import aiohttp
import pytest

from harness.participants import (
    Fail,
    ParticipantServer,
    Redirect,
    Respond,
    Stall,
    refused_url,
    unreachable_url,
)
from sagaz_operator.adapters import participants, tracing
from sagaz_operator.adapters.participants import HttpParticipants, ParticipantRequest
from sagaz_operator.api.definition import PARTICIPANT_CREDENTIALS_LABEL
from sagaz_operator.domain import egress
from sagaz_operator.domain.model import Attempt, HttpCall, Json, Purpose, SecretHeader
from sagaz_operator.errors import (
    PermanentParticipantError,
    RetryableParticipantError,
    SecretNotOptedInError,
)

SAGA_UID = "5f0c2a8e-6d1b-4f55-9a43-0c1d2e3f4a5b"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = tracing.new_traceparent(TRACE_ID)
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "tok-8f7e6d5c4b3a"
DEFAULT_BODY: Json = {"saga": {"name": "order-1001"}, "step": "reserve", "input": {"id": 1}}


class Secrets:
    """Secrets as the Kubernetes adapter would read them, from a dict; the ones in
    ``unlabelled`` lack the opt-in label (the adapter's refusal is tested on the cluster)."""

    def __init__(
        self,
        values: Mapping[tuple[str, str, str], str],
        *,
        unlabelled: frozenset[str] = frozenset(),
    ) -> None:
        self.values = values
        self.unlabelled = unlabelled
        self.labels_asked: list[str] = []

    async def read(self, *, namespace: str, name: str, key: str, opt_in_label: str) -> str:
        self.labels_asked.append(opt_in_label)
        if name in self.unlabelled:
            raise SecretNotOptedInError(f"Secret {namespace}/{name} is not labelled")
        if (namespace, name, key) not in self.values:
            raise LookupError(f"secret {namespace}/{name} not found")
        return self.values[(namespace, name, key)]


class Resolver:
    """Fixed DNS answers; remembers which names were looked up."""

    def __init__(self, answers: Mapping[str, list[str]]) -> None:
        self.answers = answers
        self.looked_up: list[str] = []

    async def __call__(self, host: str) -> list[egress.IPAddress]:
        self.looked_up.append(host)
        if host not in self.answers:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return [ipaddress.ip_address(address) for address in self.answers[host]]


@pytest.fixture
async def server() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with participants.new_client() as shared:
        yield shared


def adapter(
    client: aiohttp.ClientSession,
    *,
    policy: egress.EgressPolicy | None = None,
    resolver: Resolver | None = None,
    max_response_bytes: int = participants.MAX_RESPONSE_BYTES,
) -> HttpParticipants:
    return HttpParticipants(
        client=client,
        egress=policy or egress.EgressPolicy(),
        secrets=Secrets({("shop", "inventory-token", "token"): f"{TOKEN}\n"}),
        resolver=resolver or Resolver({}),
        now=lambda: NOW,
        max_response_bytes=max_response_bytes,
    )


def request(
    url: str,
    *,
    attempt: int = 1,
    purpose: Purpose = "action",
    timeout: float = 5.0,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    headers_from: tuple[SecretHeader, ...] = (),
    body: Json = None,
    has_body: bool = False,
) -> ParticipantRequest:
    call = HttpCall(
        url=url,
        method=method,
        headers=headers or {},
        headers_from=headers_from,
        body=body,
        has_body=has_body,
    )
    return ParticipantRequest(
        call=call,
        attempt=Attempt(
            namespace="shop",
            saga_name="order-1001",
            saga_uid=SAGA_UID,
            step="reserve",
            purpose=purpose,
            number=attempt,
        ),
        timeout_seconds=timeout,
        traceparent=TRACEPARENT,
        default_body=DEFAULT_BODY,
    )


TOKEN_HEADER = SecretHeader(name="Authorization", secret_name="inventory-token", secret_key="token")


class TestRequests:
    async def test_every_attempt_carries_the_saga_headers_and_the_same_key(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Fail(503, times=1), Respond(json={"reservationId": "r-1"}))
        participant = adapter(client)
        headers = {"X-Tenant": "acme", "Idempotency-Key": "mine", "X-Saga-Attempt": "9"}

        with pytest.raises(RetryableParticipantError):
            await participant.call(request(server.url("/reserve"), headers=headers))
        output = await participant.call(request(server.url("/reserve"), attempt=2, headers=headers))

        assert output == {"reservationId": "r-1"}
        first, second = server.requests("/reserve")
        for seen in (first, second):
            assert seen.idempotency_key == f"{SAGA_UID}/reserve/action"
            assert seen.saga == "order-1001"
            assert seen.header("X-Saga-Uid") == SAGA_UID
            assert seen.header("X-Saga-Step") == "reserve"
            assert seen.header("traceparent") == TRACEPARENT
            assert seen.header("Content-Type") == "application/json"
            assert seen.header("X-Tenant") == "acme"
            assert seen.json == DEFAULT_BODY
        assert [first.attempt, second.attempt] == [1, 2]

    async def test_a_compensation_has_its_own_key(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/release", Respond())
        await adapter(client).call(request(server.url("/release"), purpose="compensation"))
        (seen,) = server.requests("/release")
        assert seen.idempotency_key == f"{SAGA_UID}/reserve/compensation"

    @pytest.mark.parametrize(
        ("body", "has_body", "method", "sent"),
        [
            pytest.param(None, False, "POST", DEFAULT_BODY, id="default-body"),
            pytest.param({"orderId": "1001"}, True, "PUT", {"orderId": "1001"}, id="given-body"),
            pytest.param(None, True, "POST", None, id="explicit-null"),
            pytest.param(None, False, "GET", None, id="get-sends-no-default-body"),
        ],
    )
    async def test_sends_the_body(
        self,
        server: ParticipantServer,
        client: aiohttp.ClientSession,
        body: Json,
        has_body: bool,
        method: str,
        sent: Json,
    ) -> None:
        server.on("/reserve", Respond())
        call = request(server.url("/reserve"), method=method, body=body, has_body=has_body)
        await adapter(client).call(call)
        (seen,) = server.requests("/reserve")
        assert (seen.method, seen.json) == (method, sent)

    async def test_a_secret_header_is_sent_but_never_shown(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Fail(401, json={"error": f"token {TOKEN} expired"}))
        call = request(server.url("/reserve"), headers_from=(TOKEN_HEADER,))

        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client).call(call)

        (seen,) = server.requests("/reserve")
        assert seen.header("Authorization") == TOKEN  # the Secret's trailing newline is dropped
        assert TOKEN not in str(raised.value)
        assert str(raised.value) == (
            f"participant POST {server.url('/reserve')} answered 401 Unauthorized: "
            '{"error": "token *** expired"}'
        )

    async def test_a_secret_without_the_opt_in_label_is_never_sent(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        secrets = Secrets(
            {("shop", "inventory-token", "token"): TOKEN}, unlabelled=frozenset({"inventory-token"})
        )
        participants = HttpParticipants(
            client=client, egress=egress.EgressPolicy(), secrets=secrets, now=lambda: NOW
        )

        with pytest.raises(PermanentParticipantError) as raised:
            await participants.call(request(server.url("/reserve"), headers_from=(TOKEN_HEADER,)))

        assert server.requests("/reserve") == []
        assert secrets.labels_asked == [PARTICIPANT_CREDENTIALS_LABEL]
        assert str(raised.value).startswith("header Authorization: Secret shop/inventory-token")

    async def test_a_missing_secret_is_retried_and_names_the_header(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        participants = HttpParticipants(
            client=client, egress=egress.EgressPolicy(), secrets=Secrets({}), now=lambda: NOW
        )

        with pytest.raises(RetryableParticipantError) as raised:
            await participants.call(request(server.url("/reserve"), headers_from=(TOKEN_HEADER,)))

        assert server.requests("/reserve") == []
        assert str(raised.value) == "header Authorization: secret shop/inventory-token not found"


class TestRetryableFailures:
    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425, 429])
    async def test_statuses_worth_repeating(
        self, server: ParticipantServer, client: aiohttp.ClientSession, status: int
    ) -> None:
        server.on("/reserve", Fail(status))
        with pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request(server.url("/reserve")))
        assert f"answered {status} " in str(raised.value)
        assert raised.value.retry_after_seconds is None
        assert raised.value.outcome_unknown is (status in (502, 504))  # a gateway lost track

    @pytest.mark.parametrize(
        ("retry_after", "seconds"),
        [
            pytest.param(7, 7.0, id="delta-seconds"),
            pytest.param("Thu, 01 Jan 2026 12:00:30 GMT", 30.0, id="http-date"),
            pytest.param("Thu, 01 Jan 2026 11:00:00 GMT", 0.0, id="date-in-the-past"),
            pytest.param("soon", None, id="unreadable"),
        ],
    )
    async def test_retry_after_is_reported(
        self,
        server: ParticipantServer,
        client: aiohttp.ClientSession,
        retry_after: float | str,
        seconds: float | None,
    ) -> None:
        server.on("/reserve", Fail(503, retry_after=retry_after))
        with pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request(server.url("/reserve")))
        assert raised.value.retry_after_seconds == seconds

    async def test_a_stalled_participant_times_out_with_an_unknown_outcome(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        stall = Stall()
        server.on("/reserve", stall)
        with pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request(server.url("/reserve"), timeout=0.3))
        stall.release()
        assert raised.value.outcome_unknown
        assert "0.3s" in str(raised.value)
        assert len(server.requests("/reserve")) == 1

    async def test_a_participant_never_reached_has_a_known_outcome(
        self, client: aiohttp.ClientSession
    ) -> None:
        with unreachable_url("/reserve") as url, pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request(url, timeout=0.3))
        assert not raised.value.outcome_unknown
        assert "could not be reached within 0.3s" in str(raised.value)

    async def test_a_refused_connection_sent_nothing(self, client: aiohttp.ClientSession) -> None:
        with pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request(refused_url("/reserve")))
        assert not raised.value.outcome_unknown
        assert "cannot connect" in str(raised.value)

    async def test_an_unresolvable_name_sent_nothing(self, client: aiohttp.ClientSession) -> None:
        with pytest.raises(RetryableParticipantError) as raised:
            await adapter(client).call(request("http://missing.test/reserve"))
        assert not raised.value.outcome_unknown
        assert "cannot resolve missing.test" in str(raised.value)


class TestPermanentFailures:
    @pytest.mark.parametrize("status", [400, 402, 404, 409, 422])
    async def test_other_client_errors(
        self, server: ParticipantServer, client: aiohttp.ClientSession, status: int
    ) -> None:
        server.on("/reserve", Fail(status, json={"error": "x" * 1000}))
        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client).call(request(server.url("/reserve")))
        message = str(raised.value)
        assert f"answered {status} " in message
        assert message.endswith("xxx…")  # the body is cut short
        assert len(message) < 300

    async def test_a_redirect_is_not_followed(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Redirect(server.url("/elsewhere")))
        server.on("/elsewhere", Respond())
        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client).call(request(server.url("/reserve")))
        assert str(raised.value) == (
            f"participant POST {server.url('/reserve')} answered 302 redirect to "
            f"{server.url('/elsewhere')}; redirects are not followed"
        )
        assert [seen.path for seen in server.requests()] == ["/reserve"]

    async def test_only_http_urls(self, client: aiohttp.ClientSession) -> None:
        with pytest.raises(PermanentParticipantError, match="must be http:// or https://"):
            await adapter(client).call(request("file:///etc/passwd"))


class TestOutput:
    @pytest.mark.parametrize(
        ("answer", "output"),
        [
            pytest.param(Respond(json={"paid": True}), {"paid": True}, id="json"),
            pytest.param(Respond(json=[1, 2], status=201), [1, 2], id="created"),
            pytest.param(Respond(status=204), None, id="no-content"),
            pytest.param(Respond(body=b""), None, id="empty"),
            pytest.param(Respond(body=b'{"a": 1}'), {"a": 1}, id="json-without-content-type"),
            pytest.param(
                Respond(body=b"OK", headers={"Content-Type": "text/plain"}), None, id="text"
            ),
            pytest.param(Respond(body=b'{"a": NaN}'), None, id="nan-is-not-json"),
        ],
    )
    async def test_a_success_answers_with_the_output(
        self,
        server: ParticipantServer,
        client: aiohttp.ClientSession,
        answer: Respond,
        output: Json,
    ) -> None:
        server.on("/reserve", answer)
        assert await adapter(client).call(request(server.url("/reserve"))) == output

    async def test_an_oversized_output_fails_but_counts_as_done(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Respond(json={"data": "x" * 100}))
        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client, max_response_bytes=64).call(request(server.url("/reserve")))
        assert raised.value.outcome_unknown  # it did the work, so it will be compensated
        assert "larger than 64 bytes" in str(raised.value)


class TestEgress:
    async def test_a_host_outside_the_allowed_networks_is_never_called(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Respond())
        policy = egress.parse_policy(hosts="", networks="10.0.0.0/8", allow_link_local=False)
        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client, policy=policy).call(request(server.url("/reserve")))
        assert str(raised.value) == (
            "participant host 127.0.0.1 is not allowed by the egress policy: it matches no "
            "allowed host (none set) and its address 127.0.0.1 is in no allowed network "
            "(10.0.0.0/8)"
        )
        assert server.requests() == []

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            pytest.param(
                "http://169.254.169.254/latest/meta-data/",
                "participant host 169.254.169.254 is link-local (cloud metadata)",
                id="literal",
            ),
            pytest.param(
                "http://rebind.test/latest/meta-data/",
                "participant host rebind.test resolves to 169.254.169.254, which is link-local",
                id="name-resolving-to-it",
            ),
            pytest.param(
                "http://metadata.google.internal/computeMetadata/v1/",
                "participant host metadata.google.internal is a cloud metadata service",
                id="metadata-name",
            ),
        ],
    )
    async def test_cloud_metadata_is_refused_before_connecting(
        self, client: aiohttp.ClientSession, url: str, reason: str
    ) -> None:
        resolver = Resolver(
            {"rebind.test": ["169.254.169.254"], "metadata.google.internal": ["169.254.169.254"]}
        )
        with pytest.raises(PermanentParticipantError) as raised:
            await adapter(client, resolver=resolver).call(request(url, timeout=1.0))
        assert str(raised.value).startswith(reason)
        assert str(raised.value).endswith("allow it with --allow-link-local")
        assert "169.254.169.254" not in resolver.looked_up  # a literal is never looked up

    async def test_names_are_resolved_by_the_system_by_default(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Respond(json={"ok": True}))
        participant = HttpParticipants(
            client=client, egress=egress.EgressPolicy(), secrets=Secrets({})
        )
        url = f"http://localhost:{server.port}/reserve"  # /etc/hosts: loopback only
        assert await participant.call(request(url)) == {"ok": True}
        (seen,) = server.requests("/reserve")
        assert seen.header("Host") == f"localhost:{server.port}"

    async def test_a_name_is_called_at_the_address_that_was_checked(
        self, server: ParticipantServer, client: aiohttp.ClientSession
    ) -> None:
        server.on("/reserve", Respond(json={"ok": True}))
        # 127.0.0.2 is loopback too, but nothing listens there: the next checked address is used.
        resolver = Resolver({"inventory.test": ["127.0.0.2", "127.0.0.1"]})
        policy = egress.parse_policy(hosts="", networks="127.0.0.0/8", allow_link_local=False)
        participant = adapter(client, policy=policy, resolver=resolver)

        url = f"http://inventory.test:{server.port}/reserve"
        assert await participant.call(request(url)) == {"ok": True}

        (seen,) = server.requests("/reserve")
        assert seen.header("Host") == f"inventory.test:{server.port}"
        assert resolver.looked_up == ["inventory.test"]


class TestTraceparent:
    def test_is_a_new_sampled_span_in_the_sagas_trace(self) -> None:
        first, second = tracing.new_traceparent(TRACE_ID), tracing.new_traceparent(TRACE_ID)
        for traceparent in (first, second):
            assert re.fullmatch(rf"00-{TRACE_ID}-[0-9a-f]{{16}}-01", traceparent)
        assert first != second

    def test_starts_a_trace_when_none_is_given(self) -> None:
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", tracing.new_traceparent())
        assert tracing.new_trace_id() != tracing.new_trace_id()

    @pytest.mark.parametrize("trace_id", ["0" * 32, "ABC" + "0" * 29, "abc", "g" * 32])
    def test_refuses_an_invalid_trace_id(self, trace_id: str) -> None:
        with pytest.raises(ValueError, match="32 lower-case hex digits"):
            tracing.new_traceparent(trace_id)

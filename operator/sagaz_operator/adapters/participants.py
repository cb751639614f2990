"""Calling HTTP participants: one attempt of a step's action or compensation (DESIGN.md section 3).

The executor renders a step's call, then asks ``HttpParticipants.call`` for one attempt; this
module does the I/O and turns every way the attempt can end into either the step's output or a
``ParticipantError`` that says whether to retry (``retryable``), how long the participant asked
us to wait (``retry_after_seconds``) and whether the call may have taken effect anyway
(``outcome_unknown``). Retry timing and budgets are decided in ``domain.backoff``, not here.

Why it is built this way:

- **Idempotency.** Every attempt carries ``Idempotency-Key: <saga-uid>/<step>/<purpose>``,
  derived only from values that survive an operator restart, so a participant can recognise a
  repeated call. ``X-Saga-Name``, ``X-Saga-Uid``, ``X-Saga-Step``, ``X-Saga-Attempt`` and
  ``traceparent`` come with it. These headers are the operator's: a definition's ``headers``
  cannot override them (nor ``Host`` or the framing headers); it may override ``Content-Type``,
  ``Accept`` and ``User-Agent``. The body is JSON: the call's ``body`` if it has one, else the
  default body -- except for GET and HEAD, which are sent without one.
- **Secrets** (``headersFrom``) are read at call time, from the saga's own namespace, and live
  only in the request: never logged, never in an error message (a response body that echoes
  one is redacted), and errors are raised ``from None`` so no exception chain keeps the request
  object alive. Only Secrets labelled ``sagaz.io/participant-credentials: "true"`` are used:
  the operator may read every Secret, the saga's author may not, so the Secret's owner must
  opt in (a permanent failure otherwise, sending nothing). A missing Secret or key is
  retryable: it may be created in a moment.
- **SSRF.** The target's host is resolved first and checked against the operator's egress
  policy (``domain.egress``). Plain-HTTP requests to a host name are then sent to the checked
  addresses themselves (with the original ``Host`` header), so DNS cannot answer differently
  for the check and for the connection. HTTPS keeps the name, because certificate
  verification needs it -- and it already ties the connection to that name. Redirects are never
  followed (a 3xx fails the step): a redirect could lead anywhere. The shared client ignores
  proxy variables (a proxy would resolve names beyond the policy's reach) and ``.netrc``, and
  keeps no cookies (one saga must not see another's).
- **Classification.** 2xx succeeds; 5xx, 408, 425, 429, timeouts and connection errors are
  retryable, honouring ``Retry-After`` (seconds or an HTTP date, against the injected clock);
  every other status is permanent. ``outcome_unknown`` is set when the request was sent and no
  real answer came back: a read timeout, a dropped connection, the attempt's deadline -- and
  502/504, which a gateway sends when it lost the participant mid-request. A refused connection
  or a failed DNS lookup never sent anything, so its outcome is known. A cancelled call
  (``CancelledError``) propagates unchanged; the executor treats it as outcome unknown.
- **Output.** A 2xx body that parses as JSON is the step's output, whatever its
  ``Content-Type``. An empty body, a 204, or a body that is not JSON gives ``None``: the
  participant said it did the work, and failing the step would leave that work uncompensated,
  so a participant that answers ``200 OK`` in plain text still works (a warning is logged). A
  2xx body above ``max_response_bytes`` is a permanent failure with ``outcome_unknown`` -- the
  work may be done, so the step is compensated, but its output cannot be kept.
- **Deadline.** ``timeout_seconds`` bounds the whole attempt (reading Secrets, DNS, connect,
  send, the full response), not just each socket operation, so a participant trickling bytes
  cannot hold a step beyond it.
- **Transport.** aiohttp, not httpx: a participant call is a hot path, and measured here httpx
  costs 0.75-2.1 ms of CPU per request (growing with concurrency, in httpcore's pool
  bookkeeping) against 0.09-0.15 ms for aiohttp. The shared client's connector bounds the
  connections; requests beyond the bound wait in its queue, which costs nothing per waiter.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import json
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import NoReturn, Protocol

import aiohttp
import yarl
from multidict import CIMultiDict

from sagaz_operator import __version__
from sagaz_operator.api.definition import PARTICIPANT_CREDENTIALS_LABEL
from sagaz_operator.domain import egress
from sagaz_operator.domain.model import Attempt, HttpCall, Json
from sagaz_operator.errors import (
    PermanentParticipantError,
    RetryableParticipantError,
    SecretNotOptedInError,
)

logger = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[list[egress.IPAddress]]]

RETRYABLE_STATUSES = frozenset({408, 425, 429})  # and every 5xx
OUTCOME_UNKNOWN_STATUSES = frozenset({502, 504})  # a gateway lost the participant mid-request
MAX_RESPONSE_BYTES = 1024 * 1024
SNIPPET_CHARACTERS = 200

_TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_DELTA_SECONDS = re.compile(r"[0-9]+")


class SecretReader(Protocol):
    """Reads one key of a Secret; implemented by the Kubernetes adapter.

    Raises ``LookupError`` when the Secret or key does not exist, and
    ``SecretNotOptedInError`` when the Secret lacks ``opt_in_label: "true"``.
    """

    async def read(self, *, namespace: str, name: str, key: str, opt_in_label: str) -> str: ...


@dataclass(frozen=True, kw_only=True)
class ParticipantRequest:
    """One attempt of a step's action or compensation, with its call already rendered."""

    call: HttpCall
    attempt: Attempt
    timeout_seconds: float  # the whole attempt
    traceparent: str
    default_body: Json = None  # sent when the call has no ``body``


def new_client(*, max_connections: int = 100) -> aiohttp.ClientSession:
    """The operator's one HTTP client for participants; close it when the operator stops.

    Call it inside the running event loop. The environment is not trusted (no proxy variables,
    no ``.netrc`` credentials), except for the CA bundle: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    still name the CAs that participants' certificates are verified against (OpenSSL reads
    them), so a cluster's private CA can be mounted. Idle connections are kept for 30 s.
    """
    connector = aiohttp.TCPConnector(
        limit=max_connections, keepalive_timeout=30.0, ssl=ssl.create_default_context()
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # one saga must not see another's cookies
        headers={"User-Agent": f"sagaz-operator/{__version__}"},
        timeout=aiohttp.ClientTimeout(total=None),  # each call's asyncio.timeout bounds it
        trace_configs=[_SENT],
    )


async def _headers_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    """From the request's headers on, the outcome is unknown (see ``_Attempt.sent``)."""
    attempt = context.trace_request_ctx
    if isinstance(attempt, _Attempt):
        attempt.sent = True


_SENT = aiohttp.TraceConfig()
_SENT.on_request_headers_sent.append(_headers_sent)
_SENT.freeze()


async def resolve(host: str) -> list[egress.IPAddress]:
    """The addresses ``host`` resolves to, in the system resolver's order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HttpParticipants:
    """Calls HTTP participants through one shared client, within the egress policy."""

    def __init__(
        self,
        *,
        client: aiohttp.ClientSession,
        egress: egress.EgressPolicy,
        secrets: SecretReader,
        resolver: Resolver | None = None,
        now: Callable[[], datetime] = _utc_now,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._client = client
        self._egress = egress
        self._secrets = secrets
        self._resolver = resolver or resolve
        self._now = now
        self._max_response_bytes = max_response_bytes
        if _SENT not in client.trace_configs:  # without it, no call's outcome is ever unknown
            raise ValueError("HttpParticipants needs a client made by participants.new_client")

    async def close(self) -> None:
        """Close the shared client."""
        await self._client.close()

    async def call(self, request: ParticipantRequest) -> Json:
        """Make one attempt; the step's output, or a ``ParticipantError``."""
        url = _parse_url(request.call.url)
        content = _content(request)
        attempt = _Attempt(target=f"participant {request.call.method.upper()} {_shown(url)}")
        logger.debug(
            "Calling %s for step %s of saga %s/%s (%s, attempt %d)",
            attempt.target,
            request.attempt.step,
            request.attempt.namespace,
            request.attempt.saga_name,
            request.attempt.purpose,
            request.attempt.number,
        )
        try:
            async with asyncio.timeout(request.timeout_seconds):
                headers = await self._headers(
                    request, json_body=content is not None, attempt=attempt
                )
                host = url.raw_host or ""  # IDNA-encoded, as DNS and patterns see it
                addresses = await self._addresses(host, attempt)
                refusal = _egress_check(self._egress, host=host, addresses=tuple(addresses))
                if refusal is not None:
                    raise PermanentParticipantError(refusal)
                return await self._send(
                    request,
                    url,
                    addresses=addresses,
                    headers=headers,
                    content=content,
                    attempt=attempt,
                )
        except TimeoutError:
            what = "did not answer" if attempt.sent else "could not be reached"
            raise RetryableParticipantError(
                f"{attempt.target} {what} within {request.timeout_seconds:g}s",
                outcome_unknown=attempt.sent,
            ) from None

    async def _headers(
        self, request: ParticipantRequest, *, json_body: bool, attempt: _Attempt
    ) -> CIMultiDict[str]:
        call = request.call
        headers: CIMultiDict[str] = CIMultiDict({"Accept": "application/json"})
        if json_body:
            headers["Content-Type"] = "application/json"
        for name, value in call.headers.items():
            if name.lower() not in _TRANSPORT_HEADERS:
                headers[name] = value
        namespace = request.attempt.namespace
        for secret in call.headers_from:
            try:
                value = await self._secrets.read(
                    namespace=namespace,
                    name=secret.secret_name,
                    key=secret.secret_key,
                    opt_in_label=PARTICIPANT_CREDENTIALS_LABEL,
                )
            except SecretNotOptedInError as error:
                raise PermanentParticipantError(f"header {secret.name}: {error}") from None
            except LookupError as error:
                raise RetryableParticipantError(f"header {secret.name}: {error}") from None
            value = value.strip()  # HTTP ignores surrounding whitespace; files often end in \n
            if any(character in value for character in "\r\n\0"):
                raise PermanentParticipantError(
                    f"header {secret.name} from Secret {namespace}/{secret.secret_name} "
                    f"(key {secret.secret_key}) is not a valid HTTP header value"
                )
            headers[secret.name] = value
            attempt.secrets.append(value)
        headers["Idempotency-Key"] = request.attempt.idempotency_key
        headers["X-Saga-Name"] = request.attempt.saga_name
        headers["X-Saga-Uid"] = request.attempt.saga_uid
        headers["X-Saga-Step"] = request.attempt.step
        headers["X-Saga-Attempt"] = str(request.attempt.number)
        headers["traceparent"] = request.traceparent
        return headers

    async def _addresses(self, host: str, attempt: _Attempt) -> list[egress.IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]  # a literal is its own address
        try:
            addresses = await self._resolver(host)
        except (OSError, UnicodeError) as error:
            raise RetryableParticipantError(
                f"{attempt.target}: cannot resolve {host} ({error})"
            ) from None
        if not addresses:
            raise RetryableParticipantError(f"{attempt.target}: {host} has no addresses")
        return addresses

    async def _send(
        self,
        request: ParticipantRequest,
        url: yarl.URL,
        *,
        addresses: list[egress.IPAddress],
        headers: CIMultiDict[str],
        content: bytes | None,
        attempt: _Attempt,
    ) -> Json:
        targets = [url]
        if url.scheme == "http" and _literal(url.raw_host or "") is None:
            # Connect to exactly the addresses the policy checked (see the module docstring).
            headers["Host"] = url.host_port_subcomponent or ""
            targets = [url.with_host(str(address)) for address in addresses]
        for index, target in enumerate(targets):
            try:
                return await self._exchange(
                    request, target, headers=headers, content=content, attempt=attempt
                )
            except aiohttp.ClientConnectorError as error:
                if index + 1 < len(targets):
                    continue  # nothing was sent: the next address is safe to try
                _raise_transport(error, attempt)
            except (aiohttp.ClientError, ValueError) as error:  # ValueError: a bad header
                _raise_transport(error, attempt)
        raise AssertionError("unreachable: at least one address is tried")

    async def _exchange(
        self,
        request: ParticipantRequest,
        url: yarl.URL,
        *,
        headers: CIMultiDict[str],
        content: bytes | None,
        attempt: _Attempt,
    ) -> Json:
        async with self._client.request(
            request.call.method.upper(),
            url,
            data=content,
            headers=headers,
            allow_redirects=False,
            trace_request_ctx=attempt,
        ) as response:
            body, complete = await _read(response, self._max_response_bytes)
        return self._outcome(response, body, complete=complete, attempt=attempt)

    def _outcome(
        self, response: aiohttp.ClientResponse, body: bytes, *, complete: bool, attempt: _Attempt
    ) -> Json:
        status = response.status
        if 200 <= status < 300:
            if not complete:
                raise PermanentParticipantError(
                    f"{attempt.target} answered {status} with a body larger than "
                    f"{self._max_response_bytes} bytes; the output cannot be kept",
                    outcome_unknown=True,
                )
            return _output(response, body, attempt)
        answered = f"{attempt.target} answered {status} {response.reason or ''}".rstrip()
        if 300 <= status < 400:
            location = _shorten(attempt.redact(response.headers.get("Location", "nowhere")))
            raise PermanentParticipantError(
                f"{attempt.target} answered {status} redirect to {location}; "
                "redirects are not followed"
            )
        snippet = _shorten(attempt.redact(" ".join(body.decode("utf-8", "replace").split())))
        message = f"{answered}: {snippet}" if snippet else answered
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise RetryableParticipantError(
                message,
                retry_after_seconds=retry_after_seconds(
                    response.headers.get("Retry-After"), now=self._now()
                ),
                outcome_unknown=status in OUTCOME_UNKNOWN_STATUSES,
            )
        raise PermanentParticipantError(message)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``; ``None`` if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _Attempt:
    """What one attempt has learned so far: whether the request went out (set by the client's
    trace hook once its headers are written), which values to keep out of messages."""

    def __init__(self, *, target: str) -> None:
        self.target = target
        self.sent = False
        self.secrets: list[str] = []

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def _raise_transport(error: Exception, attempt: _Attempt) -> NoReturn:
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    detail = attempt.redact(detail)
    if isinstance(error, aiohttp.ClientConnectorError):
        raise RetryableParticipantError(f"{attempt.target}: cannot connect ({detail})") from None
    if isinstance(error, TimeoutError):
        raise RetryableParticipantError(
            f"{attempt.target}: timed out ({detail})", outcome_unknown=attempt.sent
        ) from None
    # A dropped connection, a broken body, or an answer that is not HTTP: the participant's
    # side failed, so it is worth another attempt; anything else (a header we could not send)
    # would fail the same way again.
    if isinstance(
        error,
        aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        raise RetryableParticipantError(
            f"{attempt.target}: connection failed ({detail})", outcome_unknown=attempt.sent
        ) from None
    raise PermanentParticipantError(
        f"{attempt.target}: request failed ({detail})", outcome_unknown=attempt.sent
    ) from None


def _parse_url(text: str) -> yarl.URL:
    try:
        url = yarl.URL(text)
    except (ValueError, TypeError) as error:
        raise PermanentParticipantError(f"participant URL is invalid: {error}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise PermanentParticipantError(
            f"participant URL must be http:// or https:// with a host, got {_shorten(text)!r}"
        )
    return url


@functools.lru_cache(maxsize=4096)
def _literal(host: str) -> egress.IPAddress | None:
    """The address ``host`` is, if it is an IP literal (remembered: steps call few hosts)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


#: The policy's verdicts, remembered by host and addresses (pure, and steps call few hosts).
_egress_check = functools.lru_cache(maxsize=4096)(egress.check)


def _shown(url: yarl.URL) -> str:
    """The URL without credentials, query or fragment: enough to recognise, nothing to leak."""
    return f"{url.scheme}://{url.host_port_subcomponent}{url.path}"


def _content(request: ParticipantRequest) -> bytes | None:
    call = request.call
    if not call.has_body and call.method.upper() in ("GET", "HEAD"):
        return None  # the default body is for methods that carry one
    body = call.body if call.has_body else request.default_body
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise PermanentParticipantError(
            "request body cannot be sent as JSON: it contains NaN or Infinity"
        ) from None
    return text.encode()


async def _read(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the (decoded) body, and whether that was all of it."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


def _output(response: aiohttp.ClientResponse, body: bytes, attempt: _Attempt) -> Json:
    if response.status in (204, 205) or not body.strip():
        return None
    try:
        output: Json = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:  # nested past the parser's stack: the answer came, it cannot be kept
        raise PermanentParticipantError(
            f"{attempt.target} answered {response.status} with JSON nested too deeply to "
            "parse; the output cannot be kept",
            outcome_unknown=True,
        ) from None
    except ValueError:  # also UnicodeDecodeError
        logger.warning(
            "%s answered %d with a body that is not JSON (Content-Type %s); the output is null",
            attempt.target,
            response.status,
            response.headers.get("Content-Type", "not set"),
        )
        return None
    return output


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _shorten(text: str, limit: int = SNIPPET_CHARACTERS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

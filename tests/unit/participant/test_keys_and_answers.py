"""How keys pair an action with its compensation, and which answers are final (pure)."""

from __future__ import annotations

import pytest

from sagaz_participant import Answer, InvalidKeyError
from sagaz_participant.answers import storable_headers
from sagaz_participant.keys import Purpose, parse


@pytest.mark.parametrize(
    ("value", "scope", "purpose"),
    [
        ("uid-1/charge/action", "uid-1/charge", Purpose.ACTION),
        ("uid-1/charge/compensation", "uid-1/charge", Purpose.COMPENSATION),
        ("uid-1/charge/undo", "uid-1/charge/undo", None),  # not the operator's shape
        ("order-17/compensation", "order-17/compensation", None),
        ("a/b/c/action", "a/b/c/action", None),
        ("//action", "//action", None),
        ("8b1f0c1e-5f6a-4c55-9d43-3c9e3c7c1a10", "8b1f0c1e-5f6a-4c55-9d43-3c9e3c7c1a10", None),
    ],
)
def test_the_scope_and_purpose_of_a_key(value: str, scope: str, purpose: Purpose | None) -> None:
    key = parse(value)
    assert (key.value, key.scope, key.purpose) == (value, scope, purpose)


def test_a_compensation_knows_its_action() -> None:
    assert parse("uid-1/charge/compensation").action == "uid-1/charge/action"


@pytest.mark.parametrize("value", ["", "x" * 513, "new\nline", "tab\t"])
def test_unusable_keys(value: str) -> None:
    with pytest.raises(InvalidKeyError, match="printable"):
        parse(value)


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (200, True),
        (201, True),
        (204, True),
        (400, True),
        (402, True),
        (404, True),
        (409, True),
        (408, False),
        (425, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_what_the_operator_would_retry_is_not_final(status: int, final: bool) -> None:
    assert Answer(status=status).final is final


def test_per_transfer_headers_are_not_stored() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", "12"),
        ("Date", "x"),
        ("X-Booking", "B-1"),
        ("server", "aiohttp"),
    ]
    assert storable_headers(headers) == (("content-type", "application/json"), ("x-booking", "B-1"))

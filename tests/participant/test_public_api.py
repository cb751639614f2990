"""The SDK's public names are a contract: adding one is a decision, removing one a break."""

from __future__ import annotations

import subprocess
import sys

import sagaz_participant


def test_the_public_names() -> None:
    assert sorted(sagaz_participant.__all__) == [
        "Answer",
        "ConfigurationError",
        "Delivery",
        "Event",
        "Idempotency",
        "Inbox",
        "InvalidKeyError",
        "NoTransactionError",
        "ParticipantError",
        "Result",
        "Source",
        "connection",
    ]


def test_it_imports_neither_kopf_nor_kubernetes_nor_the_operator() -> None:
    """Checked in a fresh interpreter: what importing every module really loads."""
    probe = (
        "import sys, sagaz_participant, sagaz_participant.asgi, sagaz_participant.aiohttp_web;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kopf', 'kubernetes',"
        " 'sagaz_operator'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"

"""A saga runs to Succeeded on the real cluster, and its status tells the story."""

from __future__ import annotations

import pytest

from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster


def http(server: ParticipantServer, path: str, **extra: object) -> dict[str, object]:
    return {"http": {"url": server.url(path), **extra}}


def order_definition(server: ParticipantServer) -> dict[str, object]:
    """reserve -> (charge, notify) -> ship"""
    return {
        "steps": [
            {
                "name": "reserve",
                "action": http(server, "/reserve", body={"orderId": "${input.orderId}"}),
                "compensation": http(
                    server,
                    "/release",
                    body={"reservationId": "${steps.reserve.output.reservationId}"},
                ),
            },
            {
                "name": "charge",
                "dependsOn": ["reserve"],
                "action": http(server, "/charge", body={"amount": "${input.amount}"}),
                "compensation": http(server, "/refund"),
            },
            {
                "name": "notify",
                "dependsOn": ["reserve"],
                "action": http(server, "/notify"),
            },
            {
                "name": "ship",
                "dependsOn": ["charge", "notify"],
                "action": http(
                    server,
                    "/ship",
                    body={
                        "reservation": "${steps.reserve.output.reservationId}",
                        "note": "order ${input.orderId} of ${saga.name}",
                    },
                ),
            },
        ]
    }


async def test_four_step_dag_succeeds_with_outputs_flowing(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/reserve", Respond(json={"reservationId": "r-1"}))
    for path in ("/charge", "/notify", "/ship"):
        participants.on(path, Respond(json={"ok": True}))
    await sagas.define("order", order_definition(participants))

    await sagas.start(
        "order-1",
        {"definitionRef": {"name": "order"}, "input": {"orderId": "1001", "amount": 99.5}},
    )
    saga = await sagas.wait("order-1")

    status = saga["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "4/4"
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 4
    assert status["steps"][0]["output"] == {"reservationId": "r-1"}
    assert participants.requests("/charge")[0].json == {"amount": 99.5}
    assert participants.requests("/ship")[0].json == {
        "reservation": "r-1",
        "note": "order 1001 of order-1",
    }
    ship = participants.requests("/ship")[0]
    assert ship.idempotency_key == f"{saga['metadata']['uid']}/ship/action"
    assert ship.header("X-Saga-Name") == "order-1"
    assert ship.header("traceparent") is not None
    assert participants.requests("/release") == []

"""examples/travel-booking: parallel bookings, a Pivot payment, a Retriable e-mail, and the
parallel compensation when the hotel is full. The participant is
examples/travel-booking/travel.py (on sagaz_participant) as a real process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from harness.examples import EXAMPLES, ParticipantProcess, load
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

EXAMPLE = EXAMPLES / "travel-booking"
DEMO_ADDRESS = "127.0.0.1:18082"


def participant(postgres_url: str, log: Path, *extra: str) -> ParticipantProcess:
    args = ["--database-url", postgres_url, *extra]
    return ParticipantProcess(EXAMPLE / "travel.py", args, log=log)


@pytest.fixture
def travel(postgres_url: str, tmp_path: Path) -> Iterator[ParticipantProcess]:
    process = participant(postgres_url, tmp_path / "travel.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def slow_travel(postgres_url: str, tmp_path: Path) -> Iterator[ParticipantProcess]:
    process = participant(postgres_url, tmp_path / "travel.log", "--slow-flights", "4")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


async def test_a_trip_and_a_trip_whose_hotel_is_full(
    sagas: Sagas, travel: ParticipantProcess, db: asyncpg.Connection
) -> None:
    definition = load(
        EXAMPLE / "definition.yaml", address=travel.address, demo_address=DEMO_ADDRESS
    )
    await sagas.define(definition["metadata"]["name"], definition["spec"])
    for file in ("trip.yaml", "trip-hotel-full.yaml"):
        saga = load(EXAMPLE / file, address="", demo_address="")
        await sagas.start(saga["metadata"]["name"], saga["spec"])

    phases = await sagas.wait_all(["trip-lisbon", "trip-overbooked"], within=120)

    assert phases == {"trip-lisbon": "Succeeded", "trip-overbooked": "Compensated"}
    done, failed = await sagas.get("trip-lisbon"), await sagas.get("trip-overbooked")
    assert {s["name"]: s["phase"] for s in done["status"]["steps"]} == dict.fromkeys(
        ["book-flight", "book-hotel", "book-car", "charge-payment", "send-confirmation"],
        "Succeeded",
    )
    email = next(s for s in done["status"]["steps"] if s["name"] == "send-confirmation")
    assert email["attempts"] == 3  # two 503s from the mail relay, retried
    assert {s["name"]: s["phase"] for s in failed["status"]["steps"]} == {
        "book-flight": "Compensated",
        "book-hotel": "Failed",
        "book-car": "Compensated",
        "charge-payment": "Skipped",
        "send-confirmation": "Skipped",
    }

    ok, overbooked = done["metadata"]["uid"], failed["metadata"]["uid"]
    bookings = {(r["trip"], r["kind"]): r for r in await db.fetch("SELECT * FROM travel_bookings")}
    assert {k: r["state"] for k, r in bookings.items() if k[0] in (ok, overbooked)} == {
        (ok, "flights"): "booked",
        (ok, "hotels"): "booked",
        (ok, "cars"): "booked",
        (overbooked, "flights"): "cancelled",
        (overbooked, "cars"): "cancelled",
    }
    flight, car = bookings[(overbooked, "flights")], bookings[(overbooked, "cars")]
    # The two cancellations (each takes 1.5 s) ran at the same time, not one after the other.
    assert flight["cancel_started"] < car["cancel_finished"]
    assert car["cancel_started"] < flight["cancel_finished"]
    trips = [ok, overbooked]
    payments = await db.fetch("SELECT trip FROM travel_payments WHERE trip = ANY($1)", trips)
    emails = await db.fetch("SELECT trip FROM travel_emails WHERE trip = ANY($1)", trips)
    assert [r["trip"] for r in payments] == [ok]
    assert [r["trip"] for r in emails] == [ok]  # once, though it was tried three times


async def test_a_booking_overtaken_by_its_cancellation_is_refused_and_never_applied(
    sagas: Sagas, slow_travel: ParticipantProcess, db: asyncpg.Connection
) -> None:
    """The flight booking is held 4 s on its way; the attempt times out after 1 s (outcome
    unknown), so the saga compensates the flight too. The cancellation reaches the SDK first:
    it succeeds with nothing to undo and cancels the booking, which, arriving late, is
    refused (409) and books nothing."""
    definition = load(
        EXAMPLE / "definition.yaml", address=slow_travel.address, demo_address=DEMO_ADDRESS
    )
    flight = definition["spec"]["steps"][0]
    assert flight["name"] == "book-flight"
    flight.update(timeoutSeconds=1, retry={"maxAttempts": 1})
    await sagas.define(definition["metadata"]["name"], definition["spec"])
    saga = load(EXAMPLE / "trip.yaml", address="", demo_address="")
    await sagas.start(saga["metadata"]["name"], saga["spec"])

    phases = await sagas.wait_all(["trip-lisbon"], within=120)

    assert phases == {"trip-lisbon": "Compensated"}
    done = await sagas.get("trip-lisbon")
    assert {s["name"]: s["phase"] for s in done["status"]["steps"]} == {
        "book-flight": "Compensated",
        "book-hotel": "Compensated",
        "book-car": "Compensated",
        "charge-payment": "Skipped",
        "send-confirmation": "Skipped",
    }
    uid = done["metadata"]["uid"]
    late = f"/flights/book {uid}/book-flight/action -> 409"
    async with asyncio.timeout(30):
        while late not in slow_travel.log.read_text():  # noqa: ASYNC110 - a log, not an event
            await asyncio.sleep(0.2)
    text = slow_travel.log.read_text()
    assert f"/flights/cancel {uid}/book-flight/compensation -> 200" in text
    assert text.index("/book-flight/compensation") < text.index("/book-flight/action")
    rows = await db.fetch("SELECT kind, state FROM travel_bookings WHERE trip = $1", uid)
    assert {r["kind"]: r["state"] for r in rows} == {"hotels": "cancelled", "cars": "cancelled"}

"""The Sagas' list-then-watch loop, against a fake of its two API calls: no event is lost
when streams end or break, a 410 lists again (and reports what vanished meanwhile), and an
observer failing on one object does not stop the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from sagaz_operator.adapters.kube import ApiError, ApiUnreachableError
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.services import informer
from sagaz_operator.services.informer import Informer

PATH = "/apis/sagaz.io/v1alpha1/sagas"


def saga(uid: str, version: int, namespace: str = "shop") -> dict[str, Any]:
    return {
        "metadata": {
            "uid": uid,
            "name": uid,
            "namespace": namespace,
            "resourceVersion": str(version),
        }
    }


def event(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": body}


class FakeApi:
    """Lists and watch streams scripted in order; each watch records the version asked for."""

    def __init__(self, lists: list[Any], streams: list[Any]) -> None:
        self.lists = lists
        self.streams = streams
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def list_all(self, path: str) -> tuple[list[dict[str, Any]], str]:
        outcome = self.lists.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        items, version = outcome
        return [dict(item) for item in items], version

    async def watch(
        self, path: str, *, resource_version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        if not self.streams:
            self.done.set()
            await asyncio.Event().wait()
        for item in self.streams.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


class Seen:
    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.fail_on = fail_on

    def __call__(self, kind: str | None, body: Mapping[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        if uid == self.fail_on:
            raise RuntimeError("broken")
        self.events.append((kind, uid))


async def run(api: FakeApi, seen: Seen, served: Served = informer.EVERYWHERE) -> Informer:
    watch = Informer(api, PATH, seen, kind="Saga", api_version="sagaz.io/v1alpha1", served=served)
    task = asyncio.create_task(watch.run_forever())
    try:
        await asyncio.wait_for(api.done.wait(), timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return watch


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "RETRY_SECONDS", (0.01, 0.02))


async def test_the_watch_resumes_from_the_last_version_seen() -> None:
    api = FakeApi(
        lists=[([saga("a", 5)], "10")],
        streams=[
            [
                event("ADDED", saga("b", 11)),
                event("BOOKMARK", {"metadata": {"resourceVersion": "15"}}),
            ],
            [event("MODIFIED", saga("a", 16)), ApiUnreachableError("cut")],
            [event("DELETED", saga("b", 17))],
        ],
    )
    seen = Seen()
    await run(api, seen)
    assert seen.events == [(None, "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert api.watched_from == ["10", "15", "16", "17"]


async def test_a_gone_version_lists_again_and_reports_what_vanished() -> None:
    api = FakeApi(
        lists=[([saga("a", 1), saga("b", 2)], "10"), ([saga("b", 30), saga("c", 31)], "40")],
        streams=[[event("ERROR", {"code": 410, "message": "too old"})]],
    )
    seen = Seen()
    await run(api, seen)
    assert seen.events == [(None, "a"), (None, "b"), ("DELETED", "a"), (None, "b"), (None, "c")]
    assert api.watched_from == ["10", "40"]


async def test_a_refused_watch_with_410_lists_again() -> None:
    api = FakeApi(
        lists=[([saga("a", 1)], "10"), ([saga("a", 1)], "50")],
        streams=[[ApiError(410, "Expired")]],
    )
    await run(api, Seen())
    assert api.watched_from == ["10", "50"]


async def test_a_refused_list_is_tried_again() -> None:
    api = FakeApi(
        lists=[ApiError(403, "forbidden"), ApiUnreachableError("away"), ([saga("a", 1)], "10")],
        streams=[],
    )
    seen = Seen()
    await run(api, seen)
    assert seen.events == [(None, "a")]


async def test_a_broken_object_does_not_stop_the_others() -> None:
    api = FakeApi(
        lists=[([saga("bad", 1), saga("a", 2)], "10")],
        streams=[[event("MODIFIED", saga("bad", 11)), event("ADDED", saga("b", 12))]],
    )
    seen = Seen(fail_on="bad")
    await run(api, seen)
    assert seen.events == [(None, "a"), ("ADDED", "b")]


async def test_objects_outside_the_served_namespaces_are_not_observed() -> None:
    api = FakeApi(
        lists=[([saga("a", 1, "team-a"), saga("x", 2, "kube-system")], "10")],
        streams=[[event("ADDED", saga("y", 11, "other")), event("ADDED", saga("b", 12, "team-b"))]],
    )
    seen = Seen()
    await run(api, seen, Served(("team-*",)))
    assert seen.events == [(None, "a"), ("ADDED", "b")]


async def test_listed_objects_get_their_kind() -> None:
    bodies: list[Mapping[str, Any]] = []
    api = FakeApi(lists=[([saga("a", 1)], "10")], streams=[])
    await run(api, lambda kind, body: bodies.append(body))  # type: ignore[arg-type]
    assert bodies[0]["kind"] == "Saga"
    assert bodies[0]["apiVersion"] == "sagaz.io/v1alpha1"


def test_plain_namespaces_are_watched_each_and_globs_cluster_wide() -> None:
    prefix = "/apis/sagaz.io/v1alpha1"
    assert informer.paths(prefix, "sagas", Served()) == [f"{prefix}/sagas"]
    assert informer.paths(prefix, "sagas", Served(("b", "a"))) == [
        f"{prefix}/namespaces/a/sagas",
        f"{prefix}/namespaces/b/sagas",
    ]
    assert informer.paths(prefix, "sagas", Served(("team-*",))) == [f"{prefix}/sagas"]

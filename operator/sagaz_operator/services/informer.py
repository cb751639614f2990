"""Objects in from the API server: list once, then watch from the list's version, for ever.

Sagas come in this way (into the intake), and SagaDefinitions (into the sagas' cache of them,
and their checks).

This is what Kopf did for Sagas, without its per-event machinery (a worker task per object, a
handler registry matched on every event, a logger per object), which cost a sixth of the
operator's CPU when every status write of every saga came back as a watch event; with several
replicas, each paid it for the sagas it does not own as well. Kopf still serves Jobs,
OutboxWorkers and their Deployments.

- **No event lost**: a watch resumes from the last version it saw (a bookmark included), so a
  stream the server ends, or a broken connection, misses nothing. When that version is too old
  (410 Gone), it lists again: every listed object is observed (``kind`` None, as for the first
  list), and an object seen before but missing from the new list is observed as ``DELETED``
  (it was deleted meanwhile).
- **Nothing stalls the stream**: an observer failing on one object is logged and the stream
  goes on; an API server that refuses (RBAC, the CRD not installed yet) or is away is retried
  with a growing pause, and the error is logged in words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.errors import SagazError

logger = logging.getLogger(__name__)

#: The watch's server-side timeout: the stream is renewed (from its last version) this often.
WATCH_SECONDS = 300
#: Pauses after a failed list or watch: doubled from the first to the last, then kept (short:
#: a saga created while the API server was away is noticed within seconds of its return).
RETRY_SECONDS = (0.5, 5.0)

EVERYWHERE = Served()

Observer = Callable[[str | None, Mapping[str, Any]], None]


def fan_out(*observers: Observer) -> Observer:
    """One observer that hands each event to every one of ``observers``, in order."""

    def observe(kind: str | None, body: Mapping[str, Any]) -> None:
        for observer in observers:
            observer(kind, body)

    return observe


class Watchable(Protocol):
    """The two Kubernetes calls an informer needs (``adapters.kube.Kube`` has them)."""

    async def list_all(self, path: str) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, path: str, *, resource_version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]: ...


class WatchError(SagazError):
    """The API server sent an error in the stream; ``status`` 410: the version is too old."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def paths(prefix: str, plural: str, served: Served) -> list[str]:
    """What to watch for ``served``: each namespace by name, or the whole cluster."""
    names = served.names
    if names is None:
        return [f"{prefix}/{plural}"]
    return [f"{prefix}/namespaces/{name}/{plural}" for name in names]


def saga_paths(served: Served) -> list[str]:
    """The Sagas' lists covering ``served`` (the watch and the status resync use the same)."""
    return paths(f"/apis/{API_VERSION}", "sagas", served)


class Informer:
    def __init__(
        self,
        api: Watchable,
        path: str,
        observe: Observer,
        *,
        kind: str,
        api_version: str,
        served: Served = EVERYWHERE,
        seconds: int = WATCH_SECONDS,
    ) -> None:
        self._api = api
        self._path = path
        self._observe = observe
        self._kind = kind
        self._api_version = api_version
        self._served = served
        self._seconds = seconds
        self._known: set[str] = set()  # uids of the objects seen and not yet deleted
        self._version: str | None = None  # where the watch resumes; None: list first

    async def run_forever(self) -> None:
        pause = RETRY_SECONDS[0]
        while True:
            try:
                if self._version is None:
                    self._version = await self._list()
                await self._watch(self._version)
                pause = RETRY_SECONDS[0]
            except SagazError as error:  # the adapter's ApiError carries the status too
                if getattr(error, "status", None) == 410:
                    self._relist()
                    continue
                logger.warning("watch on %s: %s; again in %gs", self._path, error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_SECONDS[1])

    def _relist(self) -> None:
        """The version to watch from is too old: list again at once (nothing is wrong)."""
        logger.info(
            "watch on %s: 410 Gone from version %s; listing again", self._path, self._version
        )
        self._version = None

    async def _list(self) -> str:
        items, version = await self._api.list_all(self._path)
        listed = {}
        for item in items:
            item.setdefault("kind", self._kind)  # list items may come without them
            item.setdefault("apiVersion", self._api_version)
            meta = item.get("metadata") or {}
            if meta.get("uid") and self._served.includes(str(meta.get("namespace"))):
                listed[str(meta["uid"])] = item
        for uid in self._known - listed.keys():
            self._deliver("DELETED", {"metadata": {"uid": uid}})
        self._known = set(listed)
        for item in listed.values():
            self._deliver(None, item)
        return version

    async def _watch(self, version: str) -> None:
        """Watch from ``version`` until the stream ends, keeping the last version seen."""
        async for event in self._api.watch(
            self._path, resource_version=version, seconds=self._seconds
        ):
            kind, body = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                message = f"the API server ended the watch: {body.get('message')}"
                raise WatchError(message, status=body.get("code"))
            meta = body.get("metadata") or {}
            self._version = str(meta.get("resourceVersion") or self._version)
            uid = meta.get("uid")
            if kind == "BOOKMARK" or not uid:
                continue
            if not self._served.includes(str(meta.get("namespace"))):
                continue
            if kind == "DELETED":
                self._known.discard(uid)
            else:
                self._known.add(uid)
            self._deliver(kind, body)

    def _deliver(self, kind: str | None, body: Mapping[str, Any]) -> None:
        try:
            self._observe(kind, body)
        except Exception:  # one broken object never stops the others' events
            meta = body.get("metadata") or {}
            logger.exception(
                "watch: %s %s/%s could not be taken in",
                self._kind,
                meta.get("namespace"),
                meta.get("name"),
            )

"""A minimal apiserver client on aiohttp, for creating Sagas in bulk and watching them.

One ``aiohttp.ClientSession`` (keep-alive, up to 100 connections) authenticated with the
kubeconfig's client certificate: creating N Sagas is N concurrent POSTs on it, not N
``kubectl`` processes, and the watch is one long GET. The official client is synchronous
(a thread per call) and would make the bench's own load part of the measurement.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def _file(user: dict[str, Any], key: str, scratch: Path) -> str | None:
    """The path of a kubeconfig credential given inline (``<key>-data``) or as a file."""
    if f"{key}-data" in user:
        target = scratch / key
        target.write_bytes(base64.b64decode(user[f"{key}-data"]))
        return str(target)
    value = user.get(key)
    return None if value is None else str(value)


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
        user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
        self.server: str = cluster["cluster"]["server"]
        scratch = Path(tempfile.mkdtemp(prefix="bench-kube-"))
        self._ssl = ssl.create_default_context(
            cafile=_file(cluster["cluster"], "certificate-authority", scratch)
        )
        cert = _file(user["user"], "client-certificate", scratch)
        if cert is not None:
            self._ssl.load_cert_chain(cert, _file(user["user"], "client-key", scratch))
        token = user["user"].get("token")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=100, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                self.server, connector=connector, headers=self._headers
            )
        return self._session

    async def close(self) -> None:
        """Close the session; the next request opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; a 429 is tried again after its Retry-After, for a minute (the API
        server answers "storage is (re)initializing" while its cache of a kind reloads)."""
        deadline = time.monotonic() + 60
        while True:
            async with self.session.request(method, path, json=body) as answer:
                text = await answer.text()
                if answer.status == 429 and time.monotonic() < deadline:
                    await asyncio.sleep(float(answer.headers.get("Retry-After") or 1))
                    continue
                if answer.status >= 300:
                    raise RuntimeError(f"{method} {path}: {answer.status} {text[:300]}")
                return json.loads(text) if text else None

    async def apply(self, path: str, body: Any) -> Any:
        """Server-side apply (JSON is YAML, so the body is sent as JSON)."""
        headers = {"Content-Type": "application/apply-patch+yaml"}
        async with self.session.patch(path, data=json.dumps(body), headers=headers) as answer:
            text = await answer.text()
            if answer.status >= 300:
                raise RuntimeError(f"apply {path}: {answer.status} {text[:300]}")
            return json.loads(text)

    async def delete_namespace(self, name: str, *, within: float = 600) -> None:
        """Delete a namespace and return once it is gone (the namespace controller deletes
        what is in it first: about 4 s per 1000 Sagas here)."""
        path = f"/api/v1/namespaces/{name}"
        await self.request("DELETE", path)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self.session.get(path) as answer:
                if answer.status == 404:
                    return
            await asyncio.sleep(1)
        raise TimeoutError(f"namespace {name} still there after {within:.0f} s")

    async def raw(self, path: str, *, seconds: float) -> bytes:
        """A GET's body as bytes (a profile); RuntimeError when the server refuses it."""
        async with self.session.get(path, timeout=aiohttp.ClientTimeout(total=seconds)) as answer:
            if answer.status >= 300:
                raise RuntimeError(f"GET {path}: {answer.status}")
            return await answer.read()

    async def text(self, path: str) -> str:
        async with self.session.get(path) as answer:
            answer.raise_for_status()
            return await answer.text()

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """The watch events of a collection from ``resource_version`` on, until the server
        ends the stream (its timeout); the caller watches again from the last version."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "300"}
        params["allowWatchBookmarks"] = "true"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(path, params=params, timeout=timeout) as answer:
            answer.raise_for_status()
            async for line in answer.content:
                if line.strip():
                    yield json.loads(line)


def request_totals(metrics: str) -> dict[tuple[str, str], float]:
    """``apiserver_request_total`` summed by (verb, resource[/subresource]) from /metrics."""
    totals: dict[tuple[str, str], float] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
        labels = dict(
            (part.split("=", 1)[0], part.split("=", 1)[1].strip('"'))
            for part in labels_text.split('",')
            if "=" in part
        )
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = (labels.get("verb", ""), resource)
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION")


def write_deltas(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    """Writes between two scrapes, by (verb, resource); reads and watches left out."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0] in WRITE_VERBS and after[key] - before.get(key, 0.0) > 0
    }


def writes_of_others(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], *, created: int
) -> dict[tuple[str, str], float]:
    """``write_deltas`` with the bench's own ``created`` Saga POSTs taken off."""
    writes = write_deltas(before, after)
    writes[("POST", "sagas")] = writes.get(("POST", "sagas"), 0) - created
    return writes


def per_saga(writes: dict[tuple[str, str], float], n: int) -> dict[str, float]:
    """The writes per saga, keyed ``writes <verb> <resource>`` (as reports carry them)."""
    return {f"writes {verb} {resource}": count / n for (verb, resource), count in writes.items()}


def worded(figures: Mapping[str, float]) -> str:
    """The ``writes ...`` figures as "PATCH sagas/status 1.00, POST events 1.00"; those under
    0.005 (the namespace controller's few deletions and the like) left out."""
    return ", ".join(
        f"{key.removeprefix('writes ')} {value:.2f}"
        for key, value in sorted(figures.items())
        if key.startswith("writes ") and value >= 0.005
    )

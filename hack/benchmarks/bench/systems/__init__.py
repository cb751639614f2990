"""The systems under test, one module each, all behind the ``System`` protocol.

Each ``run`` starts N sagas of a variant at once and returns when all are finished (or its
deadline passed), reporting when it started and when it saw each saga finish; the runner
adds the participant's records.
"""

from __future__ import annotations

from typing import Protocol

from bench.figures import Run
from bench.workload import Variant


class System(Protocol):
    name: str

    async def start(self) -> None: ...

    async def run(self, *, n: int, variant: Variant) -> Run: ...

    async def close(self) -> None: ...

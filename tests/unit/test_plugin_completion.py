"""``kubectl sagaz`` completion: what needs no cluster (commands, flags, values, file names)."""

from __future__ import annotations

import pytest

from sagaz_operator.plugin import completion


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([""], (list(completion.COMMANDS), ":4")),
        (["re"], (["retry", "resume"], ":4")),
        (["retry", "--w"], (["--wait"], ":4")),
        (["history", "-o", ""], (["table", "json"], ":4")),
        (["graph", "--output", "d"], (["dot"], ":4")),
        (["get", "--phase", "Comp"], (["Compensating", "Compensated", "CompensationFailed"], ":4")),
        (["validate", "-f", ""], ([], ":0")),  # the shell completes file names
        (["nonsense", ""], ([], ":4")),
    ],
)
def test_completes_without_a_cluster(args: list[str], expected: tuple[list[str], str]) -> None:
    assert completion.candidates(args) == expected


def test_an_unreachable_cluster_completes_nothing() -> None:
    assert completion.candidates(["get", "--kubeconfig", "/nonexistent", ""]) == ([], ":4")

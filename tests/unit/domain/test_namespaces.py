"""The served namespaces, judged as Kopf judges the same ``--namespace`` patterns."""

from __future__ import annotations

import pytest

from sagaz_operator.domain.namespaces import Served


def test_no_pattern_serves_the_whole_cluster_watched_as_one() -> None:
    served = Served()
    assert served.includes("anything")
    assert served.names is None


def test_plain_names_are_watched_one_by_one() -> None:
    served = Served(("shop", "billing"))
    assert served.names == ("billing", "shop")
    assert served.includes("billing")
    assert not served.includes("other")


def test_a_comma_list_is_one_pattern_whose_later_names_only_readmit() -> None:
    """Kopf's rule, kept so that Sagas and the other kinds are served alike: several
    namespaces are several ``--namespace`` flags (as the chart renders them)."""
    served = Served(("shop,billing",))
    assert served.names is None
    assert served.includes("shop")
    assert not served.includes("billing")


@pytest.mark.parametrize(
    ("pattern", "namespace", "included"),
    [
        ("team-*", "team-a", True),
        ("team-*", "other", False),
        ("team-*, !*-tmp", "team-a-tmp", False),
        ("myapp-*, !*-pr-*, *pr-123", "myapp-pr-123", True),
        ("myapp-*, !*-pr-*, *pr-123", "otherapp-pr-123", False),
        ("!*-pr-*, *pr-123", "otherapp-pr-123", True),
        ("!kube-*", "kube-system", False),
        ("!kube-*", "shop", True),
        ("team-?", "team-ab", False),
    ],
)
def test_globs_follow_kopfs_rule(pattern: str, namespace: str, included: bool) -> None:
    served = Served((pattern,))
    assert served.names is None  # a glob: the cluster is watched and filtered
    assert served.includes(namespace) is included


def test_any_of_several_patterns_serves() -> None:
    served = Served(("team-*", "shop"))
    assert served.includes("shop")
    assert served.includes("team-x")
    assert not served.includes("billing")

"""The sagas' cache of SagaDefinitions, as the informer feeds it (services.definition_cache)."""

from __future__ import annotations

from typing import Any

from sagaz_operator.services.definition_cache import DefinitionCache


def body(uid: str, *, name: str = "shop", generation: int = 1, **spec: Any) -> dict[str, Any]:
    meta = {"uid": uid, "namespace": "ns", "name": name, "generation": generation}
    return {"metadata": meta, "spec": spec}


def test_the_last_version_watched_is_the_one_given() -> None:
    cache = DefinitionCache()
    cache.observe(None, body("u1", steps=["a"]))  # from a list
    cache.observe("MODIFIED", body("u1", generation=2, steps=["a", "b"]))

    found = cache.get("ns", "shop")
    assert found is not None
    assert (found.name, found.generation, found.spec) == ("shop", 2, {"steps": ["a", "b"]})
    assert cache.get("other", "shop") is None
    assert cache.get("ns", "other") is None


def test_a_deletion_is_forgotten_also_when_a_relist_names_only_the_uid() -> None:
    cache = DefinitionCache()
    cache.observe("ADDED", body("u1"))
    cache.observe("ADDED", body("u2", name="billing"))
    cache.observe("DELETED", {"metadata": {"uid": "u1"}})  # what a relist reports
    cache.observe("DELETED", body("u2", name="billing"))

    assert cache.get("ns", "shop") is None
    assert cache.get("ns", "billing") is None


def test_a_definition_deleted_and_created_again_survives_the_late_deletion() -> None:
    cache = DefinitionCache()
    cache.observe("ADDED", body("u1", steps=["old"]))
    cache.observe("ADDED", body("u2", steps=["new"]))  # same name, a new object
    cache.observe("DELETED", {"metadata": {"uid": "u1"}})

    found = cache.get("ns", "shop")
    assert found is not None
    assert found.spec == {"steps": ["new"]}

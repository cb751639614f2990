"""The web UI's assets: all shipped in the package, none fetched from the internet, and no
script that turns data into markup."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from sagaz_operator.adapters.webui import routes

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "operator" / "sagaz_operator"
ASSETS = sorted(path for path in routes.STATIC.rglob("*") if path.is_file())
#: The one absolute URL the scripts may hold: the SVG namespace, an identifier, never fetched.
NAMESPACES = {"http://www.w3.org/2000/svg"}


def test_every_asset_is_package_data() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sagaz_operator"]
    assert ASSETS
    for asset in ASSETS:
        relative = asset.relative_to(PACKAGE).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


@pytest.mark.parametrize("asset", ASSETS, ids=lambda path: path.name)
def test_no_asset_reaches_outside_the_operator(asset: Path) -> None:
    text = asset.read_text()
    urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text))
    assert urls <= NAMESPACES
    assert "@import" not in text


@pytest.mark.parametrize(
    "asset", [path for path in ASSETS if path.suffix == ".js"], ids=lambda path: path.name
)
def test_no_script_parses_strings_as_markup_or_code(asset: Path) -> None:
    text = asset.read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "DOMParser",
        "createContextualFragment",
    ):
        assert sink not in text, f"{asset.name} uses {sink}"

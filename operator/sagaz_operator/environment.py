"""Reading ``SAGAZ_*`` settings from the environment: a bad value is a ``ConfigError`` that
names the variable, never a traceback. Used by the operator's and the relay worker's settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from sagaz_operator.errors import ConfigError

_T = TypeVar("_T", int, float)


def whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    return _parsed(env, name, default, int, "a whole number")


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float, "a number of seconds")


def number(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float, "a number")


def _parsed(
    env: Mapping[str, str], name: str, default: _T, convert: Callable[[str], _T], what: str
) -> _T:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return convert(text)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {text!r}") from None


def items(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def address(env: Mapping[str, str], name: str, default: str) -> tuple[str, int] | None:
    """``host:port`` (IPv6 hosts in brackets), or None for an empty value or ``off``."""
    text = env.get(name, default).strip()
    if not text or text.lower() == "off":
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} must be host:port or off, not {text!r}")
    return host.strip("[]"), int(port)

"""Reading ``SAGAZ_*`` settings from the environment: a bad value is a ``ConfigError`` that
names the variable, never a traceback. Used by the operator's and the relay worker's settings."""

from __future__ import annotations

from collections.abc import Mapping

from sagaz_operator.errors import ConfigError


def whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {text!r}") from None


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {text!r}") from None


def number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None


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

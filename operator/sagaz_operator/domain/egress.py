"""Which hosts the operator may call as participants: the SSRF guard (DESIGN.md section 5).

A participant URL is written by whoever may create a SagaDefinition, and the operator calls it
from inside the cluster with the operator's network position. Without a guard, a saga could make
the operator fetch the cloud metadata service (and its credentials) or poke internal services
the author cannot reach. The operator's administrator therefore sets an egress policy:

- ``allowed_hosts``: exact host names (``inventory.shop.svc``) or ``*.suffix`` wildcards
  (``*.shop.svc`` matches ``a.shop.svc`` and ``a.b.shop.svc``, not ``shop.svc`` itself).
  Matching ignores case and a trailing dot. A wildcard never matches an IP literal.
- ``allowed_networks``: CIDRs; a target is allowed if *every* address its host resolves to lies
  in one of them (a name with one allowed and one forbidden address is refused, since the
  connection might use either). IPv4-mapped IPv6 addresses are judged as their IPv4 address.
- Both lists empty (the default): every host is allowed, except as below.
- Link-local addresses (169.254.0.0/16, fe80::/10), the AWS IPv6 metadata address
  (fd00:ec2::254) and the metadata host names (``metadata.google.internal``, ``metadata``) are
  refused unless ``allow_link_local`` is set -- **even when a host pattern or an allowed network
  matches them**. That is deliberate: a broad network such as ``0.0.0.0/0`` or a wildcard host
  whose DNS an attacker controls must not open the metadata service by accident; reaching it
  takes the one explicit switch.

Everything here is pure: the adapter resolves the host and passes the addresses in, so the same
decision is made for a literal IP and for a name, and the rules are tested without DNS. The
adapter then connects only to the addresses that were checked, so a name cannot resolve to an
allowed address for the check and a forbidden one for the connection (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from sagaz_operator.errors import ConfigError

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})

_HINT = "allow it with --allow-link-local"
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True, kw_only=True)
class EgressPolicy:
    """Where participants may be; see the module docstring for the rules."""

    allowed_hosts: tuple[str, ...] = ()  # normalised: lower case, no trailing dot
    allowed_networks: tuple[IPNetwork, ...] = ()
    allow_link_local: bool = False

    @property
    def restricted(self) -> bool:
        """Whether any allow-list is set (otherwise only link-local targets are refused)."""
        return bool(self.allowed_hosts or self.allowed_networks)


def check(policy: EgressPolicy, *, host: str, addresses: Sequence[IPAddress]) -> str | None:
    """``None`` if ``host``, resolved to ``addresses``, may be called; else the reason why not.

    For an IP literal, ``addresses`` is that address. The reason is written for the person who
    reads the step's error, and names the setting that would allow the call.
    """
    name = normalise_host(host)
    if not policy.allow_link_local:
        refusal = _link_local_refusal(name, [_unmapped(address) for address in addresses])
        if refusal is not None:
            return refusal
    if not policy.restricted or any(
        _host_matches(pattern, name) for pattern in policy.allowed_hosts
    ):
        return None
    if not addresses:
        return f"participant host {name} has no address to check against the egress policy"
    for address in addresses:
        if not any(_unmapped(address) in network for network in policy.allowed_networks):
            return (
                f"participant host {name} is not allowed by the egress policy: "
                f"it matches no allowed host ({_listed(policy.allowed_hosts)}) and its address "
                f"{address} is in no allowed network "
                f"({_listed([str(network) for network in policy.allowed_networks])})"
            )
    return None


def parse_policy(*, hosts: str, networks: str, allow_link_local: bool) -> EgressPolicy:
    """A policy from comma-separated settings (flags or environment); ``ConfigError`` if bad."""
    return EgressPolicy(
        allowed_hosts=tuple(_host_pattern(item) for item in _items(hosts)),
        allowed_networks=tuple(_network(item) for item in _items(networks)),
        allow_link_local=allow_link_local,
    )


def normalise_host(host: str) -> str:
    """``host`` as the policy compares it: lower case, no brackets, no trailing dot, and an IP
    literal in its canonical form (so ``0:0::1`` and ``::1`` are the same host)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    literal = _literal(name)
    return name if literal is None else str(literal)


# --- matching -------------------------------------------------------------------------------


def _link_local_refusal(name: str, addresses: Sequence[IPAddress]) -> str | None:
    if name in METADATA_HOSTS:
        return f"participant host {name} is a cloud metadata service; {_HINT}"
    literal = _literal(name)
    for address in addresses:
        if address.is_link_local or address in METADATA_ADDRESSES:
            kind = "link-local (cloud metadata)" if address.is_link_local else "cloud metadata"
            if literal is not None and _unmapped(literal) == address:
                return f"participant host {name} is {kind}; {_HINT}"
            return f"participant host {name} resolves to {address}, which is {kind}; {_HINT}"
    return None


def _host_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        return _literal(name) is None and name.endswith(pattern[1:])
    return name == pattern


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _literal(name: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none set"


# --- parsing --------------------------------------------------------------------------------


def _items(setting: str) -> list[str]:
    return [item.strip() for item in setting.split(",") if item.strip()]


def _host_pattern(item: str) -> str:
    pattern = normalise_host(item)
    if pattern in ("*", "*."):
        raise ConfigError(
            f"egress host pattern {item!r} would allow every host; "
            "leave the allowed hosts empty instead"
        )
    name = pattern[2:] if pattern.startswith("*.") else pattern
    if _literal(pattern) is not None:
        return pattern  # an exact IP literal, already canonical
    if not _HOST_NAME.fullmatch(name):
        raise ConfigError(
            f"egress host pattern {item!r} is invalid: expected a host name such as "
            "inventory.shop.svc or a wildcard such as *.shop.svc ('*' only as the first label)"
        )
    return pattern


def _network(item: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(item)
    except ValueError as error:
        hint = ""
        try:
            loose = ipaddress.ip_network(item, strict=False)
        except ValueError:
            pass
        else:
            hint = f"; did you mean {loose}?"
        raise ConfigError(f"egress network {item!r} is not a valid CIDR: {error}{hint}") from None

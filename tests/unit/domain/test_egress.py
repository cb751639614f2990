"""The egress policy: which participant hosts the operator may call (the SSRF guard)."""

from __future__ import annotations

import ipaddress

import pytest

from sagaz_operator.domain import egress
from sagaz_operator.domain.egress import EgressPolicy
from sagaz_operator.errors import ConfigError


def ips(*addresses: str) -> list[egress.IPAddress]:
    return [ipaddress.ip_address(address) for address in addresses]


def policy(hosts: str = "", networks: str = "", *, allow_link_local: bool = False) -> EgressPolicy:
    return egress.parse_policy(hosts=hosts, networks=networks, allow_link_local=allow_link_local)


OPEN = policy()
SHOP = policy("inventory.shop.svc, *.payments.svc", "10.0.0.0/8, fd00::/8")
WIDE = policy(networks="0.0.0.0/0, ::/0")
TRUSTING = policy(allow_link_local=True)


class TestAllowed:
    @pytest.mark.parametrize(
        ("egress_policy", "host", "addresses"),
        [
            pytest.param(OPEN, "inventory.shop.svc", ips("10.1.2.3"), id="open-any-host"),
            pytest.param(OPEN, "127.0.0.1", ips("127.0.0.1"), id="open-loopback"),
            pytest.param(OPEN, "example.com", ips("93.184.215.14", "2606::1"), id="open-public"),
            pytest.param(SHOP, "inventory.shop.svc", ips("172.16.0.1"), id="exact-host"),
            pytest.param(SHOP, "Inventory.Shop.Svc.", ips("172.16.0.1"), id="case-trailing-dot"),
            pytest.param(SHOP, "card.payments.svc", ips("8.8.8.8"), id="wildcard-host"),
            pytest.param(SHOP, "a.b.payments.svc", ips("8.8.8.8"), id="wildcard-deeper"),
            pytest.param(SHOP, "other.svc", ips("10.9.9.9"), id="in-network"),
            pytest.param(SHOP, "other.svc", ips("10.9.9.9", "fd12::1"), id="all-in-networks"),
            pytest.param(SHOP, "10.0.0.7", ips("10.0.0.7"), id="literal-in-network"),
            pytest.param(SHOP, "other.svc", ips("::ffff:10.0.0.7"), id="ipv4-mapped"),
            pytest.param(TRUSTING, "169.254.169.254", ips("169.254.169.254"), id="link-local-ok"),
            pytest.param(TRUSTING, "metadata.google.internal", ips("169.254.169.254"), id="gcp-ok"),
            pytest.param(
                policy(networks="169.254.0.0/16", allow_link_local=True),
                "169.254.1.1",
                ips("169.254.1.1"),
                id="link-local-network-with-switch",
            ),
            pytest.param(policy("10.0.0.7"), "10.0.0.7", ips("10.0.0.7"), id="ip-as-host"),
            pytest.param(policy("::1"), "0:0::1", ips("::1"), id="ipv6-host-canonical"),
        ],
    )
    def test_is_allowed(
        self, egress_policy: EgressPolicy, host: str, addresses: list[egress.IPAddress]
    ) -> None:
        assert egress.check(egress_policy, host=host, addresses=addresses) is None


class TestRefused:
    @pytest.mark.parametrize(
        ("egress_policy", "host", "addresses", "reason"),
        [
            pytest.param(
                OPEN,
                "169.254.169.254",
                ips("169.254.169.254"),
                "participant host 169.254.169.254 is link-local (cloud metadata); "
                "allow it with --allow-link-local",
                id="metadata-literal",
            ),
            pytest.param(
                OPEN,
                "evil.example.com",
                ips("93.184.215.14", "169.254.169.254"),
                "participant host evil.example.com resolves to 169.254.169.254, which is "
                "link-local (cloud metadata); allow it with --allow-link-local",
                id="resolves-to-metadata",
            ),
            pytest.param(
                OPEN,
                "fe80::1",
                ips("fe80::1"),
                "participant host fe80::1 is link-local (cloud metadata); "
                "allow it with --allow-link-local",
                id="ipv6-link-local",
            ),
            pytest.param(
                OPEN,
                "other.svc",
                ips("::ffff:169.254.169.254"),
                "participant host other.svc resolves to 169.254.169.254, which is "
                "link-local (cloud metadata); allow it with --allow-link-local",
                id="ipv4-mapped-link-local",
            ),
            pytest.param(
                OPEN,
                "fd00:ec2::254",
                ips("fd00:ec2::254"),
                "participant host fd00:ec2::254 is cloud metadata; allow it with "
                "--allow-link-local",
                id="aws-ipv6-metadata",
            ),
            pytest.param(
                OPEN,
                "Metadata.Google.Internal.",
                ips("10.0.0.1"),
                "participant host metadata.google.internal is a cloud metadata service; "
                "allow it with --allow-link-local",
                id="gcp-metadata-name",
            ),
            pytest.param(
                OPEN,
                "metadata",
                ips("10.0.0.1"),
                "participant host metadata is a cloud metadata service; "
                "allow it with --allow-link-local",
                id="bare-metadata-name",
            ),
            pytest.param(
                WIDE,
                "169.254.169.254",
                ips("169.254.169.254"),
                "participant host 169.254.169.254 is link-local (cloud metadata); "
                "allow it with --allow-link-local",
                id="link-local-inside-allowed-network",
            ),
            pytest.param(
                SHOP,
                "rebind.payments.svc",
                ips("169.254.169.254"),
                "participant host rebind.payments.svc resolves to 169.254.169.254, which is "
                "link-local (cloud metadata); allow it with --allow-link-local",
                id="link-local-behind-allowed-host",
            ),
            pytest.param(
                policy(networks="10.0.0.0/8"),
                "127.0.0.1",
                ips("127.0.0.1"),
                "participant host 127.0.0.1 is not allowed by the egress policy: it matches no "
                "allowed host (none set) and its address 127.0.0.1 is in no allowed network "
                "(10.0.0.0/8)",
                id="outside-networks",
            ),
            pytest.param(
                SHOP,
                "other.svc",
                ips("10.0.0.1", "192.168.0.1"),
                "participant host other.svc is not allowed by the egress policy: it matches no "
                "allowed host (inventory.shop.svc, *.payments.svc) and its address 192.168.0.1 "
                "is in no allowed network (10.0.0.0/8, fd00::/8)",
                id="one-address-outside",
            ),
            pytest.param(
                policy("*.payments.svc"),
                "payments.svc",
                ips("10.0.0.1"),
                "participant host payments.svc is not allowed by the egress policy: it matches "
                "no allowed host (*.payments.svc) and its address 10.0.0.1 is in no allowed "
                "network (none set)",
                id="wildcard-excludes-apex",
            ),
            pytest.param(
                policy("*.0.1"),
                "10.0.0.1",
                ips("10.0.0.1"),
                "participant host 10.0.0.1 is not allowed by the egress policy: it matches "
                "no allowed host (*.0.1) and its address 10.0.0.1 is in no allowed "
                "network (none set)",
                id="wildcard-never-matches-ip",
            ),
            pytest.param(
                policy("inventory.shop.svc"),
                "inventory.shop.svc.evil.com",
                ips("10.0.0.1"),
                "participant host inventory.shop.svc.evil.com is not allowed by the egress "
                "policy: it matches no allowed host (inventory.shop.svc) and its address "
                "10.0.0.1 is in no allowed network (none set)",
                id="exact-is-exact",
            ),
            pytest.param(
                policy(networks="10.0.0.0/8"),
                "unresolved.svc",
                [],
                "participant host unresolved.svc has no address to check against the egress policy",
                id="no-addresses",
            ),
        ],
    )
    def test_says_why(
        self,
        egress_policy: EgressPolicy,
        host: str,
        addresses: list[egress.IPAddress],
        reason: str,
    ) -> None:
        assert egress.check(egress_policy, host=host, addresses=addresses) == reason


class TestParsing:
    def test_reads_comma_separated_settings(self) -> None:
        parsed = egress.parse_policy(
            hosts=" Inventory.Shop.Svc. ,, *.payments.svc ,10.0.0.7",
            networks="10.0.0.0/8, fd00::/8 , 192.168.1.1",
            allow_link_local=True,
        )
        assert parsed == EgressPolicy(
            allowed_hosts=("inventory.shop.svc", "*.payments.svc", "10.0.0.7"),
            allowed_networks=(
                ipaddress.ip_network("10.0.0.0/8"),
                ipaddress.ip_network("fd00::/8"),
                ipaddress.ip_network("192.168.1.1/32"),
            ),
            allow_link_local=True,
        )

    def test_empty_settings_allow_everything_but_link_local(self) -> None:
        assert policy() == EgressPolicy()
        assert not policy().restricted

    @pytest.mark.parametrize(
        ("hosts", "networks", "message"),
        [
            pytest.param(
                "",
                "10.0.0.1/8",
                "egress network '10.0.0.1/8' is not a valid CIDR: 10.0.0.1/8 has host bits set; "
                "did you mean 10.0.0.0/8?",
                id="host-bits",
            ),
            pytest.param(
                "",
                "10.0.0.0/33",
                "egress network '10.0.0.0/33' is not a valid CIDR: "
                "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
                id="bad-prefix",
            ),
            pytest.param(
                "",
                "shop.svc",
                "egress network 'shop.svc' is not a valid CIDR: "
                "'shop.svc' does not appear to be an IPv4 or IPv6 network",
                id="not-a-network",
            ),
            pytest.param(
                "*",
                "",
                "egress host pattern '*' would allow every host; leave the allowed hosts empty "
                "instead",
                id="star",
            ),
            pytest.param(
                "shop.*.svc",
                "",
                "egress host pattern 'shop.*.svc' is invalid: expected a host name such as "
                "inventory.shop.svc or a wildcard such as *.shop.svc ('*' only as the first "
                "label)",
                id="inner-wildcard",
            ),
            pytest.param(
                "http://shop.svc",
                "",
                "egress host pattern 'http://shop.svc' is invalid: expected a host name such as "
                "inventory.shop.svc or a wildcard such as *.shop.svc ('*' only as the first "
                "label)",
                id="url-not-host",
            ),
        ],
    )
    def test_refuses_bad_settings_clearly(self, hosts: str, networks: str, message: str) -> None:
        with pytest.raises(ConfigError) as raised:
            egress.parse_policy(hosts=hosts, networks=networks, allow_link_local=False)
        assert str(raised.value) == message

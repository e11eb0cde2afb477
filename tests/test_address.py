"""perfmesh.model.address: one host-name rule, one address parser, loopback by ipaddress."""

from __future__ import annotations

import pytest

from perfmesh.errors import ConfigError
from perfmesh.model.address import (DEFAULT_BASE_PORT, check_host_name, is_host_name, is_loopback,
                                    is_loopback_address, parse_connect, parse_host_port, parse_listen)


def fake_dns(table):
    return lambda name: table.get(name, [])


def test_a_name_spelled_like_loopback_is_not_loopback():
    """127.attacker.example is a name: it counts only by what it resolves to."""
    assert not is_loopback("127.attacker.example", fake_dns({"127.attacker.example": ["203.0.113.7"]}))
    assert not is_loopback("127.attacker.example", fake_dns({}))
    assert not is_loopback("127.attacker.example")   # the real resolver: unresolvable or not loopback


def test_localhost_resolves_to_loopback():
    """localhost is loopback because the system resolver maps it to a loopback address."""
    assert is_loopback("localhost")


def test_a_name_counts_only_when_every_address_is_loopback():
    """A name resolving to loopback and a public address is not loopback; no address is not either."""
    assert is_loopback("box", fake_dns({"box": ["127.0.1.1"]}))
    assert not is_loopback("box", fake_dns({"box": ["127.0.0.1", "192.0.2.1"]}))
    assert not is_loopback("")


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.5", False), ("0.0.0.0", False), ("::", False), ("2001:db8::1", False), ("localhost", False),
])
def test_addresses_are_classified_by_ipaddress(address, expected):
    """An IP address is loopback when ipaddress says so; a name given as an address is not."""
    assert is_loopback_address(address) is expected
    if address != "localhost":
        assert is_loopback(address, fake_dns({})) is expected   # an address is never resolved


def test_host_names():
    """Letters, digits, '_', '.', '-'; starting with a letter or digit; at most 128 characters."""
    for good in ("web01", "db-1.example.com", "a", "x" * 128, "1host"):
        assert is_host_name(good) and check_host_name(good) == good
    for bad in ("", ".hidden", "-x", "bad name", "web01;rm", "x" * 129, "a/b", None, 7):
        assert not is_host_name(bad)
    with pytest.raises(ConfigError, match=r"'bad name' is not a valid host name; expected a host name"):
        check_host_name("bad name")


def test_connect_addresses():
    """HOST, HOST:BASE, [v6], [v6]:BASE and a bare IPv6 address; the base port defaults to 7700."""
    assert parse_connect("agg") == ("agg", DEFAULT_BASE_PORT) == ("agg", 7700)
    assert parse_connect("10.0.0.5:7000") == ("10.0.0.5", 7000)
    assert parse_connect("[::1]:7000") == ("::1", 7000)
    assert parse_connect("[::1]") == ("::1", 7700)
    assert parse_connect("::1") == ("::1", 7700)
    assert parse_connect(" agg:1 ") == ("agg", 1)


@pytest.mark.parametrize("text, reason", [
    ("agg:port", "port 'port' is not a number from 1 to 65531"), ("agg:0", "from 1 to 65531"),
    ("agg:65532", "from 1 to 65531"), (":7700", "empty host"), ("[::1", "missing ']'"),
    ("[::1]x", "':PORT' after ']'"), ("[web]:1", "not an IPv6 address"), ("a:b:c", "not an IPv6 address"),
    ("agg host", "not an IP address or a host name"),
])
def test_bad_connect_addresses_name_the_value(text, reason):
    """Every malformed address is a ConfigError naming the text, the reason and the form expected."""
    with pytest.raises(ConfigError) as info:
        parse_connect(text)
    assert repr(text) in str(info.value) and reason in str(info.value)
    assert "expected HOST[:BASE_PORT]" in str(info.value)


def test_listen_addresses_need_a_port_and_allow_zero():
    """ADDR:PORT or [v6]:PORT; port 0 asks for a free port; no port is an error."""
    assert parse_listen("127.0.0.1:9790") == ("127.0.0.1", 9790)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9790", ":9790", "h:x", "h:70000"):
        with pytest.raises(ConfigError, match="expected ADDR:PORT"):
            parse_listen(bad)
    with pytest.raises(ConfigError, match="missing port"):
        parse_host_port("agg")


def test_every_reader_uses_the_one_parser_and_rule():
    """Transport, config, CLI, web and exporter share these functions (no second copy)."""
    from perfmesh.config import validation
    from perfmesh.model import address
    from workers import exporter, transport, web
    from workers.cli import flags as cli
    assert transport.is_loopback is address.is_loopback
    assert transport.parse_endpoint("[::1]:7000").host == "::1"
    assert exporter.parse_listen is web.parse_listen is address.parse_listen
    assert cli.check_host_name is address.check_host_name and web.is_host_name is address.is_host_name
    assert validation.HOST_NAME_RE is address.HOST_NAME_RE
    assert web.parse_web_listen(":7780") == ("127.0.0.1", 7780)


def test_an_embedded_application_is_named_by_the_same_rule():
    """AppAgent refuses a mesh name that is not a host name, with the rule in the message."""
    from workers.app_agent import AppAgent
    with pytest.raises(ConfigError, match=r"mesh name 'a b' is invalid; expected a host name"):
        AppAgent("127.0.0.1", "a b", None, None)

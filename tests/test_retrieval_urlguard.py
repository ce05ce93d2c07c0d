"""The address guard, as pure functions on literals (no connections are made here)."""

from __future__ import annotations

import pytest

from phichat.retrieval.urlguard import UrlRefused, check_url, check_url_syntax, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "127.8.9.10",
        "10.1.2.3",  # private
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",  # link-local: cloud metadata endpoints live here
        "0.0.0.0",  # unspecified
        "100.64.1.1",  # carrier-grade NAT
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.10",  # documentation
        "::1",  # IPv6 loopback
        "::",  # IPv6 unspecified
        "fe80::1",  # IPv6 link-local
        "fe80::1%eth0",
        "fc00::1",  # unique local
        "fd12:3456::1",
        "ff02::1",  # IPv6 multicast
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:c0a8:0101::1",  # 6to4 wrapping 192.168.1.1
        "2001:db8::1",  # documentation
        "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://example.com/",
        "http://",
        "http://user:secret@example.com/",
        "http://example.com:99999/",
    ],
)
def test_only_plain_http_urls_pass_the_syntax_check(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url_syntax(url)


def test_https_url_gives_host_and_default_port() -> None:
    assert check_url_syntax("https://Example.com/a?b=c") == ("example.com", 443)
    assert check_url_syntax("http://example.com:8080/") == ("example.com", 8080)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",  # a name that resolves to loopback
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UrlRefused, match="non-public"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)  # the setting lets them through


def test_public_literal_passes_without_any_lookup() -> None:
    check_url("https://93.184.216.34/page", allow_private=False)


def test_allowing_private_still_refuses_other_schemes() -> None:
    with pytest.raises(UrlRefused, match="scheme"):
        check_url("file:///etc/passwd", allow_private=True)

"""Where a webhook may go: http(s) URLs whose addresses are public (the SSRF guard).

An endpoint URL is checked when it is added (every address its host resolves to) and again on every
delivery, where the HTTP client resolves names through :class:`GuardedResolver`: the addresses it
connects to are the ones checked, so a DNS answer that changed since ``webhooks add`` (rebinding) cannot
point a delivery at the inside. A URL naming an IP literal is checked without DNS.

Refused unless ``webhooks.allow_private_targets``: loopback, private (RFC 1918, unique-local fc00::/7),
link-local, multicast, reserved, unspecified, shared (100.64/10) and every other not-globally-routable
address, also as IPv4-mapped IPv6. Cloud metadata addresses are refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class RefusedTarget(OSError):
    """The URL is not one a webhook may go to; the message names the host, never the whole URL."""


def refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why ``ip`` may not be a webhook target, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return "a cloud metadata address"
    if allow_private:
        return None
    for test, what in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not a public"),
    ):
        if test:
            return f"{'an' if what[0] in 'aeiou' else 'a'} {what} address"
    return None


def split_target(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http(s) URL; :class:`RefusedTarget` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedTarget("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedTarget("must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise RefusedTarget("the URL has no host")
    return host, port or (443 if parts.scheme == "https" else 80)


def literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_address(host: str, address: str, allow_private: bool) -> None:
    why = refusal(ipaddress.ip_address(address.split("%", 1)[0]), allow_private)
    if why is not None:
        raise RefusedTarget(f"{host} is {why} ({address}); set webhooks.allow_private_targets to allow it")


def check_literal(url: str, allow_private: bool) -> None:
    """What can be checked without DNS: scheme, host, an IP literal (deliveries; names go through the resolver)."""
    host, _ = split_target(url)
    ip = literal(host)
    if ip is not None:
        check_address(host, str(ip), allow_private)


async def check_url(url: str, allow_private: bool) -> None:
    """The whole check (``webhooks add``): every address the host resolves to must be allowed."""
    host, port = split_target(url)
    if literal(host) is not None:
        check_literal(url, allow_private)
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RefusedTarget(f"{host} does not resolve ({type(exc).__name__})") from None
    for info in infos:
        check_address(host, str(info[4][0]), allow_private)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, minus the addresses a webhook may not reach (checked at connect time)."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            check_address(host, entry["host"], self._allow)
        return found

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:
        return f"GuardedResolver(allow_private={self._allow})"

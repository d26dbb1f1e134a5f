"""The client address a request is counted under: the peer, or X-Forwarded-For behind proxies.

:class:`ClientAddress` takes the ASGI peer (``scope["client"]``), and reads
``X-Forwarded-For`` only when the peer is a configured trusted proxy.  IPv6 clients are
counted per /64, the block one host usually holds; IPv4-mapped IPv6 as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

__all__ = ["ClientAddress"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """The client address a request is counted under.

    Without trusted proxies it is the ASGI peer (``scope["client"]``).  With them, and
    only when the peer is one of them, ``X-Forwarded-For`` is read from the right,
    skipping trusted addresses; the first untrusted one is the client (if every hop is
    trusted, the leftmost).  Entries left of it were written by the client and are
    ignored, so a client cannot pick its own address.  ``*`` trusts every peer and every
    hop: only safe when every request passes a proxy that *replaces* the header.

    Parameters
    ----------
    trusted_proxies
        Addresses or networks (``10.0.0.0/8``, ``::1``), or ``*``.
    """

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        entries = [entry.strip() for entry in trusted_proxies if entry.strip()]
        self.trust_all = "*" in entries
        try:
            self._networks: tuple[Network, ...] = tuple(
                ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
            )
        except ValueError as exc:
            msg = f"trusted_proxies: {exc}"
            raise ValueError(msg) from None

    def _trusted(self, address: str) -> bool:
        if self.trust_all:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not (self.trust_all or self._networks) or not self._trusted(peer):
            return _bucket(peer)
        hops: list[str] = []
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                hops.extend(part.strip() for part in value.decode("latin-1").split(","))
        hops = [hop for hop in hops if hop]
        for hop in reversed(hops):
            address = _without_port(hop)
            if not self._trusted(address):
                return _bucket(address)
        return _bucket(_without_port(hops[0])) if hops else _bucket(peer)


def _without_port(hop: str) -> str:
    if hop.startswith("["):  # [2001:db8::1]:443
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:  # 192.0.2.1:443
        return hop.partition(":")[0]
    return hop


def _bucket(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)

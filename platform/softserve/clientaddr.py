"""The client's address: REMOTE_ADDR, or, when that is a trusted proxy (TRUSTED_PROXIES), the address
the proxies recorded in X-Forwarded-For.

Each proxy appends the address it received the request from, so the header is read right to left: the
rightmost entry was written by the proxy we are talking to, the next by the proxy before it, and so on.
Only entries written by trusted proxies can be believed, so the walk stops at the first address that is
not a trusted proxy: that is the client. Entries further left were written by the client (or by proxies
nobody vouches for) and are never read, so a client cannot choose its own address by sending the header.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES`: comma-separated CIDRs or single addresses; a bad entry stops the start-up."""
    networks = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {part.strip()!r} is not an address or CIDR") from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 (a dual-stack socket's view of v4)
    return address


def _trusted(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address_of(remote_addr: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client's address (as text) from the peer's address and the X-Forwarded-For header."""
    peer = _address(remote_addr)
    if peer is None:
        return remote_addr
    nearest = peer
    if not trusted or not _trusted(peer, trusted):
        return str(peer)
    for entry in reversed(forwarded_for.split(",") if forwarded_for else []):
        hop = _address(entry)
        if hop is None:
            # A trusted proxy wrote something that is no address: believe nothing further left of it.
            logger.warning("X-Forwarded-For entry %r is not an address; using %s", entry[:64], nearest)
            return str(nearest)
        nearest = hop
        if not _trusted(hop, trusted):
            return str(hop)
    return str(nearest)  # every hop is a proxy of ours: the leftmost is as close to the client as we know


def client_address(request: HttpRequest) -> str:
    return client_address_of(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR", ""),
        settings.TRUSTED_PROXIES,
    )

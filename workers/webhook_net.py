"""Where a webhook may be sent, and the one way it is sent. Standard library only: the platform checks a
URL with `resolve` when a hook is created, the workers again before every attempt.

No SSRF into the cluster: a URL whose host resolves to any private, loopback, link-local, multicast,
reserved or unspecified address (IPv4 or IPv6, IPv4-mapped and NAT64/6to4 forms unwrapped) is refused,
unless the operator lists the host or a network holding it in WEBHOOK_ALLOW_PRIVATE_HOSTS. The check
runs at delivery time too (a name may resolve elsewhere by then: DNS rebinding), and the request then
connects to the very address that was checked, with the URL's host in the Host header and TLS SNI, so a
second resolution can never switch it. Redirects are not followed; a response's body is read only up to
a few kilobytes; the whole attempt has a deadline, the name's lookup included (the system resolver has
no timeout of its own: a tenant's host whose name server never answers would hold a web request or a
delivery for as long as the resolver keeps retrying).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 3.0
RESOLVE_TIMEOUT_S = 2.0
TOTAL_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 4096  # read at most this much of an answer's body
EXCERPT_CHARS = 200  # and keep at most this much of it (in the delivery's last_error)
MAX_URL_CHARS = 2000
USER_AGENT = "Softserve-Webhooks/1"

# Lookups run here so that they can be given up on: a hung one holds a pool thread, never the caller, and
# the pool's size bounds how many hung lookups a process can hold at once.
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURL(ValueError):
    """A URL a webhook may not be sent to; the message says why, for the team."""


@dataclass(frozen=True)
class Allowed:
    """The operator's exceptions (WEBHOOK_ALLOW_PRIVATE_HOSTS) and whether plain http is allowed."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    http: bool = False

    @classmethod
    def parse(cls, text: str, http: bool = False) -> Allowed:
        """A comma-separated list of host names, addresses and CIDR networks ("127.0.0.1,10.1.0.0/16")."""
        hosts, networks = set(), []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks), http)

    def admits(self, host: str, address: Address) -> bool:
        return host in self.hosts or any(address in network for network in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the address that was checked) and what to ask for."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 form carries (IPv4-mapped, 6to4, NAT64 64:ff9b::/96), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: Address) -> bool:
    """Whether a delivery may reach this address without the operator's say-so."""
    for candidate in {address, unwrapped(address)}:
        if (
            candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
            or not candidate.is_global
        ):
            return False
    return True


def _addresses(host: str, port: int) -> list[Address]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=RESOLVE_TIMEOUT_S)
    except TimeoutError:
        lookup.cancel()  # still queued behind hung lookups: never started
        raise UnsafeURL(f"The host {host!r} did not resolve within {RESOLVE_TIMEOUT_S:g} s.") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host!r} does not resolve.") from exc
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # no IPv6 zone
        if address not in found:
            found.append(address)
    if not found:
        raise UnsafeURL(f"The host {host!r} does not resolve.")
    return found


def check_syntax(url: str, allowed: Allowed) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL a webhook may use, without resolving it."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeURL(f"At most {MAX_URL_CHARS} characters.")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UnsafeURL("A URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("Not a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allowed.http):
        if scheme == "http":
            raise UnsafeURL("The URL must use https:// (this server does not allow plain http).")
        raise UnsafeURL("The URL must start with https://.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeURL("The URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Credentials in the URL are not allowed; use the signature to authenticate us.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def resolve(url: str, allowed: Allowed) -> Target:
    """The URL checked and its host resolved: every address it resolves to must be public or allowed by
    the operator (a name that answers with a public and a private address is refused: a rebinding
    attacker controls which one a later lookup returns). Raises UnsafeURL saying why."""
    scheme, host, port, path = check_syntax(url, allowed)
    addresses = _addresses(host, port)
    for address in addresses:
        if not is_public(address) and not allowed.admits(host, address):
            inner = unwrapped(address)
            shown = f"{address} ({inner})" if inner != address else str(address)
            raise UnsafeURL(
                f"The host {host!r} resolves to {shown}, a private, loopback, link-local or reserved "
                "address; webhooks may not reach it (an operator can allow it with "
                "WEBHOOK_ALLOW_PRIVATE_HOSTS)."
            )
    return Target(scheme, host, port, str(addresses[0]), path)


class _Pinned(http.client.HTTPConnection):
    """HTTP to the checked address, whatever the host name would resolve to now."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target

    def connect(self) -> None:
        self.sock = socket.create_connection((self.target.address, self.target.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to the checked address; SNI and certificate checked against the URL's host name."""

    def __init__(self, target: Target, timeout: float):
        # Kept here too: the base class holds it only under a private name.
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.target = target

    def connect(self) -> None:
        raw = socket.create_connection((self.target.address, self.target.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.target.host)


def post(
    target: Target,
    headers: dict[str, str],
    body: bytes,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    total_timeout_s: float = TOTAL_TIMEOUT_S,
) -> tuple[int, str]:
    """POST `body`; returns (status code, an excerpt of the answer's body). Raises OSError (including
    timeouts) or http.client.HTTPException when no answer came. Redirects are answers, not followed."""
    cls = _PinnedTLS if target.scheme == "https" else _Pinned
    conn = cls(target, connect_timeout_s)
    # A server trickling bytes would hold each read under the per-read timeout forever: the deadline
    # shuts the socket, whatever the connection is doing then.
    expired = threading.Event()

    def _expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(total_timeout_s, _expire)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        conn.connect()
        conn.sock.settimeout(max(0.01, total_timeout_s - (time.monotonic() - started)))
        conn.putrequest("POST", target.path, skip_accept_encoding=True)
        for name, value in {**headers, "User-Agent": USER_AGENT, "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        excerpt = response.read(MAX_RESPONSE_BYTES)
        if expired.is_set():  # the shut socket reads as an end of answer: not an answer in time
            raise TimeoutError(f"no complete answer within {total_timeout_s:g} s")
        return response.status, excerpt.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no answer within {total_timeout_s:g} s") from exc
        raise
    finally:
        timer.cancel()
        conn.close()

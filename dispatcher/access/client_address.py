"""Who is on the other end of a request: the peer, or the client a trusted proxy names."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str:
    """The client's address for limits and the audit log.

    `X-Forwarded-For` counts only when the peer is a trusted proxy; it is then read from the
    right, past every trusted proxy, to the first address no trusted proxy owns (the part to
    its left is whatever the client chose to send).
    """
    fallback = peer or "unknown"
    current = _address(peer or "")
    if current is None or not forwarded_for or not _trusted(current, trusted):
        return fallback
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return str(current)
        current = address
        if not _trusted(address, trusted):
            return str(address)
    return str(current)


def _trusted(address: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every server of a replica set, one client each: what per-server state (ACL rules) needs.

Most of the library talks to the primary only, and replication carries its writes to the replicas.
ACL rules are not replicated: whatever must hold on a promoted replica has to be set on each server.
A member is reached with the connection's own user, password and TLS settings at its own address;
the members are named by the caller (an inventory) or by the Sentinels of the service (its primary
and every replica they know, those they flag down included).
"""

from __future__ import annotations

from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit

from ..core.deps import redis_exceptions
from .connection import ConnectionSettings, connect
from .resp import decode, text
from .sentinel import parse_address, pin_of, show

DEFAULT_PORT = 6379


def address_of(text_address: str) -> str:
    """`host:port` (or `host`, port 6379) in one spelling, so that two mentions of a server compare equal;
    ValueError says what is wrong."""
    try:
        return show(parse_address(text_address, default_port=DEFAULT_PORT))
    except ValueError as err:
        raise ValueError(str(err).replace("Sentinel address", "replica set member")) from None


def own_address(settings: ConnectionSettings) -> Optional[str]:
    """The server the settings name (redis_url or host/port); None for a Unix socket or the Sentinels."""
    if settings.sentinel is not None:
        return None
    if settings.url:
        parts = urlsplit(settings.url)
        if parts.scheme == "unix":
            return None
        return address_of(f"{parts.hostname or 'localhost'}:{parts.port or DEFAULT_PORT}")
    return address_of(f"{settings.host}:{settings.port}")


def member_settings(settings: ConnectionSettings, address: str) -> ConnectionSettings:
    """The settings of one member: the connection's user, password, TLS and timeouts, at `address`."""
    host, port = parse_address(address, default_port=DEFAULT_PORT)
    update: Dict[str, object] = {"url": None, "sentinel": None, "host": host, "port": port, "db": 0}
    if settings.url:
        parts = urlsplit(settings.url)
        if parts.username and not settings.username:
            update["username"] = unquote(parts.username)
        if parts.password and not settings.password:
            update["password"] = unquote(parts.password)
        if parts.scheme == "rediss":
            update["tls"] = True
    return settings.model_copy(update=update)


def connect_member(settings: ConnectionSettings, address: str):
    """A connected client of one member (ConnectionFailed names its address when it does not answer)."""
    return connect(member_settings(settings, address))


def sentinel_members(client) -> Dict[str, Optional[str]]:
    """{address: Sentinel's flags} of the service's primary and every replica the answering Sentinels know
    (a replica one Sentinel lacks may be known to another), for a client built through Sentinel; {} otherwise."""
    pin = pin_of(client)
    if pin is None:
        return {}
    found: Dict[str, Optional[str]] = {}
    if pin.address is not None:
        found[show(pin.address)] = "master"
    for sentinel in client.connection_pool.sentinel_manager.sentinels:
        try:
            primary = sentinel.sentinel_master(pin.service)
            replicas = sentinel.sentinel_slaves(pin.service)
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.ResponseError):
            continue
        for entry in [primary, *replicas]:
            address = address_of(f"{entry.get('ip')}:{entry.get('port')}")
            flags = entry.get("flags")
            found.setdefault(address, ",".join(sorted(flags)) if isinstance(flags, (set, list)) else flags)
    return found


def run_id(client) -> str:
    return str(decode(client.info("server").get("run_id", "")))


def role(client) -> str:
    """ "primary" or "replica", as the server itself says (ROLE)."""
    reply = client.execute_command("ROLE")
    return "primary" if reply and str(text(reply[0])) == "master" else "replica"


def addresses(texts: List[str]) -> List[str]:
    """Each member once, in the order given."""
    return list(dict.fromkeys(address_of(entry) for entry in texts))

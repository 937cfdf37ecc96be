# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A primary found through Sentinel, and kept: what a run does when Sentinel moves it.

The settings name the Sentinels and the service they monitor; the client (built by connection.py)
asks the Sentinels for the primary's address on every (re)connect. A run must not drift silently
from one primary to another: a write acknowledged by a primary that died before its replicas had
it is gone, and whatever the run recorded about it would be wrong on the new primary. So the first
connection pins the primary it found, and a later connection that Sentinel sends elsewhere raises
PrimaryChanged (a connection error, so every caller that handles a lost connection handles it)
instead of connecting. The run then decides, at one place, whether to check the new primary and
re-pin the same client to it (`repin`), or to stop naming it.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from ..core.deps import ConfigDict, field_validator, redis, redis_exceptions
from .credentials import Credentials

DEFAULT_PORT = 26379
# Seconds between two questions to the Sentinels while waiting for a failover to finish.
POLL_SECONDS = 0.2

Address = Tuple[str, int]


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> Address:
    """`host:port`, `host` (the default port) or `[v6]:port` as (host, port); ValueError says what is wrong."""
    text = str(text).strip()
    if not text:
        raise ValueError("an empty Sentinel address; give host:port")
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"Sentinel address {text!r} is not host:port")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"Sentinel address {text!r}: write an IPv6 address as [address]:port")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"Sentinel address {text!r} names no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port of Sentinel address {text!r} must be a number from 1 to 65535")
    return host, int(port_text)


def show(address: Optional[Address]) -> str:
    if address is None:
        return "(none)"
    host, port = address
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class SentinelSettings(Credentials):
    """Where the Sentinels are, which service to ask them for, and how to talk to them (the data nodes
    are reached with the connection's own username, password and TLS settings)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    service: str
    hosts: List[str]
    # username, password, tls and tls_* (Credentials): the Sentinels' own

    @field_validator("service", mode="before")
    @classmethod
    def _service(cls, value: Any) -> str:
        if value is None:
            raise ValueError("sentinel.service is required: the name the Sentinels monitor the primary by")
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise ValueError(
                "sentinel.service must name the monitored primary as Sentinel knows it (no spaces), "
                f"not {value!r}; SENTINEL MASTERS lists the names"
            )
        return value

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> List[str]:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not value:
            raise ValueError("sentinel.hosts lists no Sentinel; give at least one host:port")
        for text in value:
            parse_address(text)
        return value

    def addresses(self) -> List[Address]:
        return [parse_address(text) for text in self.hosts]

    @property
    def endpoint(self) -> str:
        """The service and its Sentinels, for messages and for telling one replica set from another. The
        same whatever the primary is: a plan made before a failover applies after it."""
        return f"sentinel {self.service}@" + ",".join(sorted(show(a) for a in self.addresses()))

    def client_kwargs(self, timeout: float) -> Dict[str, Any]:
        """redis-py arguments of the connections to the Sentinels. Each question waits `timeout` at most and
        is not retried: discovery moves on to the next Sentinel."""
        kwargs: Dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "protocol": 2,  # Sentinel's replies are parsed by redis-py; one shape whatever the data protocol
            "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            **self.credential_kwargs(self.tls),
        }
        if self.tls:
            kwargs["ssl"] = True
        return kwargs


_ConnectionError: type = redis_exceptions.ConnectionError if redis_exceptions is not None else Exception


class PrimaryChanged(_ConnectionError):  # type: ignore[misc, valid-type]
    """Sentinel now names another primary than the one this client is pinned to."""

    def __init__(self, service: str, pinned: Address, found: Address):
        super().__init__(f"the primary of {service} moved from {show(pinned)} to {show(found)} (a failover)")
        self.service, self.pinned, self.found = service, pinned, found


class PrimaryPin:
    """The primary a client's connections may go to, shared by every connection of its pool."""

    def __init__(self, service: str):
        self.service = service
        self.address: Optional[Address] = None


class PinnedPrimary:
    """Mixed into redis-py's Sentinel-managed connection classes: connect only to the pinned primary (the
    first one found pins it); when Sentinel names another, raise PrimaryChanged instead."""

    def __init__(self, **kwargs):
        self.primary_pin: PrimaryPin = kwargs.pop("primary_pin")
        super().__init__(**kwargs)

    def _connect_retry(self):
        if self._sock:
            return None
        found = tuple(self.connection_pool.get_master_address())
        pin = self.primary_pin
        if pin.address is None:
            pin.address = found
        elif found != pin.address:
            raise PrimaryChanged(pin.service, pin.address, found)
        return self.connect_to(found)


def _pool(client):
    return getattr(client, "connection_pool", None)


def pin_of(client) -> Optional[PrimaryPin]:
    """The pin of a client built through Sentinel; None for a client of one server."""
    pool = _pool(client)
    return None if pool is None else pool.connection_kwargs.get("primary_pin")


def pinned_primary(client) -> Optional[Address]:
    pin = pin_of(client)
    return pin.address if pin is not None else None


def _manager(client):
    return _pool(client).sentinel_manager


def ask_primary(client) -> Optional[Address]:
    """The primary the Sentinels name now (the first that answers and sees one up), or None."""
    try:
        return tuple(_manager(client).discover_master(pin_of(client).service))
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.ResponseError):
        return None


def service_known(client) -> bool:
    """Whether a Sentinel answers and monitors the client's service (whatever the state of its primary)."""
    service = pin_of(client).service
    for sentinel in _manager(client).sentinels:
        try:
            sentinel.sentinel_master(service)
            return True
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.ResponseError):
            continue
    return False


def answers_as_primary(client, address: Address, timeout: float) -> bool:
    """Whether the server at `address` answers, with the client's own credentials, and says it is a primary."""
    kwargs = {
        key: value
        for key, value in _pool(client).connection_kwargs.items()
        if key in ("username", "password", "protocol") or key.startswith("ssl")
    }
    kwargs.pop("ssl", None)
    tls = any(key.startswith("ssl_") for key in kwargs)
    try:
        probe = redis.Redis(
            host=address[0],
            port=address[1],
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            ssl=tls,
            **kwargs,
        )
        try:
            role = probe.execute_command("ROLE")
        finally:
            probe.close()
    except (redis_exceptions.RedisError, OSError):
        return False
    first = role[0] if role else b""
    return (first.decode() if isinstance(first, bytes) else str(first)) == "master"


def wait_for_primary(client, timeout: float, probe_timeout: float = 1.0) -> Optional[Address]:
    """After a lost connection: the primary the Sentinels name once it answers as a primary, within
    `timeout` seconds, or None. It is the pinned one when there was no failover (a network blip), or
    when the old primary came back before Sentinel gave up on it."""
    deadline = time.monotonic() + timeout
    while True:
        found = ask_primary(client)
        if found is not None and answers_as_primary(client, found, probe_timeout):
            return found
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def repin(client, address: Address) -> None:
    """Let the client's connections go to `address` from now on; every connection to the old one is closed."""
    pin = pin_of(client)
    pin.address = tuple(address)
    _pool(client).disconnect()


def sentinel_view(client) -> Optional[Dict[str, Any]]:
    """What the Sentinels say about the service: the primary, how many Sentinels and replicas they know,
    the quorum; None for a client of one server."""
    pin = pin_of(client)
    if pin is None:
        return None
    manager = _manager(client)
    answering = []
    view: Dict[str, Any] = {"service": pin.service, "pinned_primary": show(pin.address)}
    for sentinel in manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        where = show((kwargs.get("host"), kwargs.get("port")))
        try:
            master = sentinel.sentinel_master(pin.service)
            replicas = sentinel.sentinel_slaves(pin.service)
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.ResponseError):
            continue
        answering.append(where)
        view.setdefault("primary", show((master.get("ip"), master.get("port"))))
        view.setdefault("sentinels_known", int(master.get("num-other-sentinels", 0)) + 1)
        view.setdefault("quorum", master.get("quorum"))
        view.setdefault("primary_flags", master.get("flags"))
        view.setdefault(
            "replicas",
            [
                {
                    "address": show((r.get("ip"), r.get("port"))),
                    "flags": r.get("flags"),
                    "link": r.get("master-link-status"),
                }
                for r in replicas
            ],
        )
    view["sentinels_answering"] = answering
    view["sentinels_given"] = len(manager.sentinels)
    return view


def follow_failover(client, timeout: float) -> str:
    """After a run failed: if its client was built through Sentinel and its pinned primary no longer answers
    as a primary, wait up to `timeout` seconds for the Sentinels to name one that does, and let the client go
    there, so that what the failing run still does (record where it stopped, release its locks - the lock
    keys replicated) happens on the server the re-run will use. Returns the sentence that names the new
    primary for the failure's message, or "" (no Sentinel, no failover, or none found in time: then says so)."""
    pin = pin_of(client)
    if pin is None or pin.address is None or answers_as_primary(client, pin.address, 1.0):
        return ""
    found = wait_for_primary(client, timeout)
    if found is None:
        return (
            f"; the primary {show(pin.address)} of {pin.service} is down and the Sentinels named no other "
            f"within {timeout:g} s: run the same task again once they have (SENTINEL GET-MASTER-ADDR-BY-NAME)"
        )
    old = pin.address
    repin(client, found)
    if found == old:
        return ""
    return (
        f"; the Sentinels now name {show(found)} the primary of {pin.service} (a failover from {show(old)}): "
        "run the same task again to continue there"
    )

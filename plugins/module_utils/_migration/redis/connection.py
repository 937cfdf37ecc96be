# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a Redis client is built.

Settings come from a URL, host/port/db, or the Sentinels of a replica set (sentinel.py: the primary is
asked for on every connect, and pinned), with optional ACL user, password and TLS. The protocol
(RESP2 or RESP3) is always chosen explicitly: redis-py 8 defaults to RESP3 and its FT.* replies
change shape with it. Nothing here ever puts a secret into a message; `endpoint` is host:port/db.

Settings are checked when they are built (port, timeouts, database 0 only), and connecting is
bounded by `connect_timeout`: redis-py applies `socket_timeout` to the TLS handshake and to the
connection's first commands, and retries a failed connect ten times with backoff (redis-py 8), so
TLS against a plain server waited about 11 minutes with the default timeouts. Here the TCP connect,
the TLS handshake and the first replies each wait at most `connect_timeout`, and the first connect
is tried once; later commands keep a few retries for a blip during a long migration.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from ..core.deps import ConfigDict, Field, field_validator, missing, model_validator, redis, redis_exceptions
from ..core.errors import ConnectionFailed, DependencyMissing
from ..core.limits import Port, TimeoutSeconds
from .credentials import Credentials
from .sentinel import POLL_SECONDS as FAILOVER_POLL_SECONDS
from .sentinel import PinnedPrimary, PrimaryPin, SentinelSettings, pin_of, service_known
from .topology import refuse_cluster
from .wire import pooled_connection

CLIENT_NAME = "indexops-redis-search"
URL_SCHEMES = ("redis", "rediss", "unix")
# After the first connect succeeded: retries for a dropped connection during a long run.
COMMAND_RETRIES = 3
DB_HINT = (
    "search indexes live in database 0 only, and through another database the documents read are not "
    "the ones the index returns; connect to database 0 (db: 0, or /0 at the end of redis_url)"
)


def _url_db(parts) -> Optional[str]:
    """The database a redis URL selects, as redis-py reads it: ?db=N wins over the path."""
    query = parse_qs(parts.query).get("db")
    if query:
        return query[0]
    if parts.scheme != "unix":
        path = unquote(parts.path or "").strip("/")
        return path or None
    return None


class ConnectionSettings(Credentials):
    """Where and how to connect. `password` and `url` are secrets and are excluded from repr."""

    # Errors never print their input: it may be a URL with a password in it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: Optional[str] = Field(default=None, repr=False)
    host: str = "localhost"
    port: Port = 6379
    db: int = 0
    # username, password, tls and tls_* (Credentials)
    connect_timeout: TimeoutSeconds = 10.0
    socket_timeout: TimeoutSeconds = 60.0
    protocol: int = 2
    # The primary of a replica set, found through its Sentinels (instead of url or host).
    sentinel: Optional[SentinelSettings] = None

    @field_validator("db")
    @classmethod
    def _db_zero(cls, value):
        if value != 0:
            raise ValueError(f"database {value} is not supported: {DB_HINT}")
        return value

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value):
        if value not in (2, 3):
            raise ValueError(f"protocol must be 2 or 3, not {value}")
        return value

    @model_validator(mode="after")
    def _url(self):
        # Messages must not contain the URL: it may hold a password.
        if self.url is not None and self.sentinel is not None:
            raise ValueError(
                "redis_url and sentinel are mutually exclusive: give the Sentinels (sentinel) or one server (redis_url)"
            )
        if self.url is None:
            return self
        parts = urlsplit(self.url)
        if parts.scheme not in URL_SCHEMES:
            raise ValueError(
                f"the URL scheme {parts.scheme or '(none)'!r} is not supported; redis_url must look like "
                "redis://[user:password@]host:port/0, rediss://... or unix:///path/to/socket"
            )
        if parts.scheme != "unix":
            try:
                port = parts.port
            except ValueError:
                raise ValueError("the port in redis_url is not a number from 1 to 65535") from None
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"the port in redis_url must be 1 to 65535, not {port}")
            if not parts.hostname:
                raise ValueError("redis_url names no host; it must look like redis://host:port/0")
        db = _url_db(parts)
        if db is not None and db != "0":
            raise ValueError(f"redis_url (or REDIS_URL) selects database {db}, which is not supported: {DB_HINT}")
        return self

    @property
    def endpoint(self) -> str:
        """host:port/db for messages (for a replica set, its service and Sentinels): never user names or
        passwords."""
        if self.sentinel is not None:
            return self.sentinel.endpoint
        if self.url:
            parts = urlsplit(self.url)
            db = _url_db(parts) or "0"
            if parts.scheme == "unix":
                return f"{unquote(parts.path)}/{db}"
            return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"
        return f"{self.host}:{self.port}/{self.db}"

    @property
    def uses_tls(self) -> bool:
        return (self.url or "").startswith("rediss://") if self.url else self.tls

    def secrets(self) -> list[str]:
        """Every secret string these settings hold, including a password inside the URL."""
        found = [self.password] if self.password else []
        if self.sentinel is not None and self.sentinel.password:
            found.append(self.sentinel.password)
        if self.url:
            parts = urlsplit(self.url)
            if parts.password:
                found.extend({parts.password, unquote(parts.password)})
            if parts.password or parts.username:
                found.append(self.url)
        return found

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.socket_timeout,
            "protocol": self.protocol,
            "client_name": CLIENT_NAME,
            "decode_responses": False,
            **self.credential_kwargs(self.tls or (self.url or "").startswith("rediss://")),
        }
        if self.tls and not self.url:
            kwargs["ssl"] = True
        return kwargs


class _BoundedHandshake:
    """Mixed into redis-py's connection classes: the TCP connect, the TLS handshake and the replies
    to the connection's first commands (HELLO, AUTH, CLIENT SETNAME) wait at most
    `socket_connect_timeout`; only then does `socket_timeout` apply."""

    def _connect(self):
        # Connection._connect sets the socket's timeout to `socket_timeout` right after the TCP
        # connect, and SSLConnection then runs the handshake under it.
        timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            return super()._connect()
        finally:
            self.socket_timeout = timeout

    def _replies_wait_normally(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self._sock.settimeout(self.socket_timeout)

    def on_connect_check_health(self, *args, **kwargs):  # redis-py 6+
        try:
            return super().on_connect_check_health(*args, **kwargs)
        finally:
            self._replies_wait_normally()

    def on_connect(self):  # redis-py 5
        try:
            return super().on_connect()
        finally:
            self._replies_wait_normally()


_CLASSES: dict[tuple[bool, bool], type] = {}


def _connection_class(tls: bool, sentinel: bool = False) -> type:
    if (tls, sentinel) not in _CLASSES:
        if sentinel:
            base = redis.sentinel.SentinelManagedSSLConnection if tls else redis.sentinel.SentinelManagedConnection
            bases: tuple = (_BoundedHandshake, PinnedPrimary, base)
        else:
            base = redis.connection.SSLConnection if tls else redis.connection.Connection
            bases = (_BoundedHandshake, base)
        _CLASSES[(tls, sentinel)] = type(f"Bounded{base.__name__}", bases, {})
    return _CLASSES[(tls, sentinel)]


def _sentinel_client(settings: ConnectionSettings, kwargs: dict[str, Any], tls: bool):
    """A client of the primary the Sentinels name, pinned to the first one it connects to (sentinel.py)."""
    sentinel = settings.sentinel
    manager = redis.sentinel.Sentinel(
        sentinel.addresses(), sentinel_kwargs=sentinel.client_kwargs(settings.connect_timeout)
    )
    return manager.master_for(
        sentinel.service,
        connection_class=_connection_class(tls, sentinel=True),
        primary_pin=PrimaryPin(sentinel.service),
        **kwargs,
    )


def _pool(settings: ConnectionSettings, kwargs: dict[str, Any], tls: bool):
    if settings.url and settings.url.startswith("unix://"):
        return redis.ConnectionPool.from_url(settings.url, **kwargs)
    if settings.url:
        return redis.ConnectionPool.from_url(settings.url, connection_class=_connection_class(tls), **kwargs)
    return redis.ConnectionPool(
        connection_class=_connection_class(tls), host=settings.host, port=settings.port, db=settings.db, **kwargs
    )


def _client(settings: ConnectionSettings):
    kwargs = settings.client_kwargs()
    tls = bool(kwargs.pop("ssl", False)) or settings.uses_tls
    if not tls:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
    # One attempt for the first connect: a server that does not answer, or does not speak Redis
    # (or TLS), is reported within about connect_timeout instead of after ten retries.
    kwargs["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    if settings.sentinel is not None:
        client = _sentinel_client(settings, kwargs, tls)
    else:
        client = redis.Redis(connection_pool=_pool(settings, kwargs, tls))
    client.auto_close_connection_pool = True  # the pool is this client's alone, as with Redis.from_url
    return client


def _first_ping(client, settings: ConnectionSettings) -> None:
    """PING once; through Sentinel, again until connect_timeout while no primary answers: in the middle of a
    failover (about `down-after-milliseconds` plus a second or two) the Sentinels name none that is up, or
    still the dead one. A service no Sentinel knows is reported at once. Each attempt starts from what the
    Sentinels say then (the pin is not kept)."""
    deadline = time.monotonic() + settings.connect_timeout
    while True:
        try:
            client.ping()
            return
        except redis_exceptions.AuthenticationError:
            raise
        except (redis.sentinel.MasterNotFoundError, redis_exceptions.ConnectionError):
            if settings.sentinel is None or time.monotonic() >= deadline or not service_known(client):
                raise
        pin_of(client).address = None
        client.connection_pool.disconnect()
        time.sleep(FAILOVER_POLL_SECONDS)


def connect(settings: ConnectionSettings):
    """Return a connected client (PING answered), or raise ConnectionFailed naming host:port."""
    if missing("redis"):
        raise DependencyMissing("the redis Python library is not installed", hint="pip install 'redis>=5'")
    try:
        client = _client(settings)
        _first_ping(client, settings)
        client.set_retry(redis.retry.Retry(redis.backoff.ExponentialBackoff(cap=1.0, base=0.05), COMMAND_RETRIES))
        refuse_cluster(client, settings.endpoint)
    except redis.sentinel.MasterNotFoundError as err:
        raise ConnectionFailed(
            f"no Sentinel of {settings.endpoint} names a primary for service {settings.sentinel.service!r} "
            f"that is up: {_sentinel_reason(err)}",
            hint="check sentinel.hosts and sentinel.service (SENTINEL MASTERS lists the services), the Sentinels' "
            "credentials (sentinel.username, sentinel.password) and that they run",
        ) from None
    except redis_exceptions.AuthenticationError as err:
        raise ConnectionFailed(
            f"authentication to {settings.endpoint} failed",
            hint="check username and password, or REDIS_USERNAME/REDIS_PASSWORD",
            details={"reason": _first_line(err)},
        ) from None
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as err:
        reason = _first_line(err)
        # A silent endpoint already cost connect_timeout: ask again only one that answered or hung up.
        timed_out = isinstance(err, (redis_exceptions.TimeoutError, TimeoutError))
        answer = None if settings.uses_tls or timed_out or settings.sentinel else _probe(settings)
        if answer == "not_redis":
            raise ConnectionFailed(
                f"{settings.endpoint} does not answer like a Redis server: it replied to PING with "
                "something other than the Redis protocol",
                hint="check host/port (is it a Redis server?) and the TLS settings",
            ) from None
        if answer == "closed":
            reason = f"the server closed the connection without a reply ({reason})"
        if settings.uses_tls and ("timeout" in reason.lower() or "ssl" in reason.lower() or "eof" in reason.lower()):
            hint = (
                "the TLS handshake failed: check that the server speaks TLS on this port (or turn tls off / "
                "use redis://), and tls_ca_cert / tls_verify"
            )
        elif any(word in reason.lower() for word in ("timeout", "closed", "reset")):
            hint = (
                "nothing answered like a Redis server within connect_timeout: check host/port (is it a Redis "
                "server?), TLS settings (does it expect TLS?) and that the server is running"
            )
        elif settings.sentinel is not None:
            hint = (
                "the Sentinels name a primary that does not answer: a failover that did not finish within "
                "connect_timeout? Check SENTINEL MASTERS, the primary's TLS settings and that it runs"
            )
        else:
            hint = "check redis_url or host/port, TLS settings and that the server is running"
        raise ConnectionFailed(f"cannot connect to {settings.endpoint}: {reason}", hint=hint) from None
    except redis_exceptions.ResponseError as err:
        raise ConnectionFailed(
            f"{settings.endpoint} refused the connection: {_first_line(err)}",
            hint="is it a Redis server, and is the user allowed to connect?",
        ) from None
    except redis_exceptions.RedisError as err:  # InvalidResponse and others: not the Redis protocol
        raise ConnectionFailed(
            f"{settings.endpoint} does not answer like a Redis server: {_first_line(err)}",
            hint="check host/port (is it a Redis server?) and the TLS settings",
        ) from None
    except ValueError as err:
        raise ConnectionFailed(
            f"invalid connection settings for {settings.endpoint}: {_first_line(err)}",
            hint="redis_url must look like redis://[user:password@]host:port/0 or rediss://...",
        ) from None
    return client


# The first byte of every RESP2 and RESP3 reply.
_RESP_TYPES = frozenset(b"+-:$*_,#!=(%~>|")


def _address(settings: ConnectionSettings) -> tuple[int, Any]:
    if settings.url:
        parts = urlsplit(settings.url)
        if parts.scheme == "unix":
            return socket.AF_UNIX, unquote(parts.path)
        return socket.AF_INET, (parts.hostname or "localhost", parts.port or 6379)
    return socket.AF_INET, (settings.host, settings.port)


def _probe(settings: ConnectionSettings) -> Optional[str]:
    """What the endpoint says to a bare inline PING: "not_redis" (bytes that are not RESP), "closed" (closed
    without a byte), or None (a RESP reply, silence, or unreachable: the client's own error says enough).

    Only asked after the client's first connect failed, to word that failure. The client's handshake is no
    help here: redis-py 8.2 sends its CLIENT SETNAME/SETINFO tail before reading any reply, so a web server
    that answers the first line and closes shows up as "Broken pipe" while writing, not as a bad reply."""
    family, address = _address(settings)
    try:
        if family == socket.AF_INET:
            sock = socket.create_connection(address, timeout=settings.connect_timeout)
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(settings.connect_timeout)
            sock.connect(address)
    except OSError:
        return None
    with sock:
        try:
            sock.sendall(b"PING\r\n")
            first = sock.recv(1)
        except (socket.timeout, TimeoutError):
            return None
        except OSError:
            return "closed"
    if not first:
        return "closed"
    return None if first[0] in _RESP_TYPES else "not_redis"


def lost_connection(err: BaseException) -> Optional[str]:
    """ "lost the connection to Redis (<its first line>)" when `err` is a dropped connection or a timeout
    (after the client's retries), else None. The line names host:port at most, never a secret."""
    if redis_exceptions is None or not isinstance(
        err, (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)
    ):
        return None
    return f"lost the connection to Redis ({_first_line(err)})"


def _sentinel_reason(err: BaseException) -> str:
    """What redis-py collected from each Sentinel, without its client reprs: "no Sentinel answered", or the
    first Sentinel's error."""
    text = _first_line(err)
    if " : " not in text:
        return "no Sentinel knows the service, or the primary they know is down"
    reasons = text.split(" : ", 1)[1]
    first = reasons.split(", <", 1)[0]
    return first.split(" - ", 1)[-1][:300]


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def execute_once(client, pipe, raise_on_error: bool = True):
    """Run a pipeline (a MULTI/EXEC) exactly once, without the client's retries.

    The clients here retry a command whose connection dropped (COMMAND_RETRIES), which is harmless for
    reads and for the compare-and-set scripts, but not for a transaction that moves names: if the EXEC
    ran and only its reply was lost, the retry runs it again against what it already changed (a swap's
    FT.DROPINDEX of the old name then drops the new index that name now leads to). Without the retry a
    lost reply is an error, and the caller's re-run looks at the server to see whether it happened."""
    connection = pooled_connection(client.connection_pool)
    saved = connection.retry
    connection.retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    pipe.connection = connection  # execute() uses it, and gives it back to the pool when done
    try:
        return pipe.execute(raise_on_error=raise_on_error)
    finally:
        connection.retry = saved

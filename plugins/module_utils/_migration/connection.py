# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a Redis client is built.

Settings come from a URL or host/port/db, with optional ACL user, password and TLS. The protocol
(RESP2 or RESP3) is always chosen explicitly: redis-py 8 defaults to RESP3 and its FT.* replies
change shape with it. Nothing here ever puts a secret into a message; `endpoint` is host:port/db.
"""
from __future__ import annotations

from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from .deps import BaseModel, ConfigDict, Field, redis, redis_exceptions, missing
from .errors import ConnectionFailed, DependencyMissing

CLIENT_NAME = "indexops-redis-search"


class ConnectionSettings(BaseModel):
    """Where and how to connect. `password` and `url` are secrets and are excluded from repr."""

    model_config = ConfigDict(extra="forbid")

    url: Optional[str] = Field(default=None, repr=False)
    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = Field(default=None, repr=False)
    tls: bool = False
    tls_ca_cert: Optional[str] = None
    tls_client_cert: Optional[str] = None
    tls_client_key: Optional[str] = None
    tls_verify: bool = True
    connect_timeout: float = 10.0
    socket_timeout: float = 60.0
    protocol: int = 2

    @property
    def endpoint(self) -> str:
        """host:port/db for messages: never user names or passwords."""
        if self.url:
            parts = urlsplit(self.url)
            db = parts.path.strip("/") or "0"
            port = parts.port or 6379
            return f"{parts.hostname or 'localhost'}:{port}/{db}"
        return f"{self.host}:{self.port}/{self.db}"

    def secrets(self) -> list[str]:
        """Every secret string these settings hold, including a password inside the URL."""
        found = [self.password] if self.password else []
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
        }
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.tls or (self.url or "").startswith("rediss://"):
            kwargs["ssl_cert_reqs"] = "required" if self.tls_verify else "none"
            kwargs["ssl_check_hostname"] = self.tls_verify
            if self.tls_ca_cert:
                kwargs["ssl_ca_certs"] = self.tls_ca_cert
            if self.tls_client_cert:
                kwargs["ssl_certfile"] = self.tls_client_cert
            if self.tls_client_key:
                kwargs["ssl_keyfile"] = self.tls_client_key
            if not self.url:
                kwargs["ssl"] = True
        return kwargs


def connect(settings: ConnectionSettings):
    """Return a connected client (PING answered), or raise ConnectionFailed naming host:port."""
    if missing("redis"):
        raise DependencyMissing("the redis Python library is not installed", hint="pip install 'redis>=5'")
    kwargs = settings.client_kwargs()
    try:
        if settings.url:
            client = redis.Redis.from_url(settings.url, **kwargs)
        else:
            client = redis.Redis(host=settings.host, port=settings.port, db=settings.db, **kwargs)
        client.ping()
    except redis_exceptions.AuthenticationError as err:
        raise ConnectionFailed(
            f"authentication to {settings.endpoint} failed", hint="check username and password, or REDIS_USERNAME/REDIS_PASSWORD",
            details={"reason": _first_line(err)},
        ) from None
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as err:
        raise ConnectionFailed(
            f"cannot connect to {settings.endpoint}: {_first_line(err)}",
            hint="check redis_url or host/port, TLS settings and that the server is running",
        ) from None
    except redis_exceptions.ResponseError as err:
        raise ConnectionFailed(f"{settings.endpoint} refused the connection: {_first_line(err)}") from None
    except ValueError as err:
        raise ConnectionFailed(f"invalid connection settings for {settings.endpoint}: {_first_line(err)}",
                               hint="redis_url must look like redis://[user:password@]host:port/db or rediss://...") from None
    return client


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who a connection logs in as and how it checks TLS: the same settings for a data node and a Sentinel."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..core.deps import BaseModel, Field

# Our TLS setting -> redis-py's keyword.
_TLS_FILES = (("tls_ca_cert", "ssl_ca_certs"), ("tls_client_cert", "ssl_certfile"), ("tls_client_key", "ssl_keyfile"))


class Credentials(BaseModel):
    """ACL user, password (a secret, excluded from repr) and TLS."""

    username: Optional[str] = None
    password: Optional[str] = Field(default=None, repr=False)
    tls: bool = False
    tls_ca_cert: Optional[str] = None
    tls_client_cert: Optional[str] = None
    tls_client_key: Optional[str] = None
    tls_verify: bool = True

    def credential_kwargs(self, tls: bool) -> Dict[str, Any]:
        """redis-py's login arguments, and its certificate checks when the connection uses TLS (`tls`: a
        rediss:// URL turns it on too). Turning TLS on itself (`ssl`) is left to the caller."""
        kwargs: Dict[str, Any] = {}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if tls:
            kwargs["ssl_cert_reqs"] = "required" if self.tls_verify else "none"
            kwargs["ssl_check_hostname"] = self.tls_verify
            kwargs.update({name: getattr(self, option) for option, name in _TLS_FILES if getattr(self, option)})
        return kwargs

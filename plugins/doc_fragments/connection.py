# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module (argspec: module_utils/_module_kit.py), and what every module needs on
the host that runs it: requirements.txt, as documentation (tests/integration/test_newcomer.py compares the two).
Also what every module declares alike: its author, and check mode supported (build_module turns it on for all; each
module's own attributes say what it does in check mode)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
author:
  - indexops maintainers (@indexops)
attributes:
  check_mode:
    support: full
requirements:
  - redis (the Python client) >= 5.0, < 9
  - pydantic >= 2.5, < 3
  - PyYAML >= 6.0
  - numpy >= 1.24
options:
  redis_url:
    description:
      - Redis URL, V(redis://[[username]:password@]host:port/0), or V(rediss://...) for TLS.
      - The database must be V(0) (V(/0), or no path); any other is refused before connecting, see O(db).
      - When neither O(redis_url) nor O(host) is given, the E(REDIS_URL) environment variable is used,
        then V(redis://localhost:6379/0). This lets an AWX/Tower credential inject the URL without extra vars.
      - A password inside the URL is never logged or returned.
      - Mutually exclusive with O(host) and O(sentinel).
    type: str
  host:
    description:
      - Host name or address of the Redis server, used with O(port) and O(db).
      - Mutually exclusive with O(redis_url) and O(sentinel).
    type: str
    aliases: [login_host]
  port:
    description:
      - TCP port of the Redis server, used with O(host). From V(1) to V(65535).
    type: int
    default: 6379
    aliases: [login_port]
  db:
    description:
      - Database number, used with O(host). Must be V(0) - search indexes live in database 0, and through another
        database the documents read are not the ones the index returns. Any other value is refused before connecting.
    type: int
    default: 0
  username:
    description:
      - ACL user name. Defaults to the E(REDIS_USERNAME) environment variable, then the server's default user.
    type: str
    aliases: [login_user]
  password:
    description:
      - Password of the ACL user (or the C(requirepass) password).
      - Defaults to the E(REDIS_PASSWORD) environment variable.
      - Never logged or returned. A password inside O(redis_url) takes precedence.
    type: str
    aliases: [login_password]
  tls:
    description:
      - Connect with TLS when using O(host). A V(rediss://) O(redis_url) always uses TLS.
      - Unlike M(community.general.redis_info), V(false) by default.
    type: bool
    default: false
  tls_ca_cert:
    description:
      - CA certificate (PEM) used to verify the server.
    type: path
    aliases: [ca_certs]
  tls_client_cert:
    description:
      - Client certificate (PEM) for mutual TLS. Requires O(tls_client_key).
    type: path
    aliases: [client_cert_file]
  tls_client_key:
    description:
      - Private key (PEM) of O(tls_client_cert).
    type: path
    aliases: [client_key_file]
  tls_verify:
    description:
      - Verify the server's certificate and host name. Set to V(false) only for test servers.
    type: bool
    aliases: [validate_certs]
    default: true
  connect_timeout:
    description:
      - Seconds to wait for each step of connecting - the TCP connection, the TLS handshake and the server's first
        replies. Must be more than V(0).
      - The first connection is tried once, so an endpoint that does not speak Redis (or TLS) fails within about this
        time; later commands retry a dropped connection three times.
    type: float
    default: 10.0
  socket_timeout:
    description:
      - Seconds to wait for any single reply once connected. Must be more than V(0).
    type: float
    default: 60.0
  protocol:
    description:
      - Redis protocol version to speak. Both are supported; replies are parsed for the one chosen.
    type: int
    choices: [2, 3]
    default: 2
  sentinel:
    description:
      - Connect to the primary of a replica set through its Sentinels instead of to one server. The Sentinels are
        asked for the primary on every connection; O(username), O(password), O(tls) and the other options above
        apply to the data nodes (primary and replicas), the suboptions here to the Sentinels.
      - A run pins the primary it started on and does not drift to another one. When Sentinel names another one (a
        failover), the run fails naming it, and running the same task again continues on it (C(docs/operations.md)).
      - When none of O(redis_url), O(host) and O(sentinel) is given, the E(REDIS_SENTINELS) (V(host:port,host:port))
        and E(REDIS_SENTINEL_SERVICE) environment variables are used when both are set, before E(REDIS_URL).
      - Mutually exclusive with O(redis_url) and O(host).
    type: dict
    suboptions:
      service:
        description:
          - The name the Sentinels monitor the primary by (C(sentinel monitor <service> ...)).
          - Defaults to the E(REDIS_SENTINEL_SERVICE) environment variable. Required.
        type: str
      hosts:
        description:
          - The Sentinels, each V(host:port) (V([address]:port) for IPv6; the port defaults to V(26379)). The first
            that answers and sees the primary up is asked.
          - Defaults to the E(REDIS_SENTINELS) environment variable (comma-separated). At least one is required.
        type: list
        elements: str
      username:
        description:
          - ACL user to authenticate to the Sentinels as. Defaults to the E(REDIS_SENTINEL_USERNAME) environment
            variable.
        type: str
      password:
        description:
          - Password for the Sentinels (C(requirepass) or the ACL user's). Defaults to the E(REDIS_SENTINEL_PASSWORD)
            environment variable. Never logged or returned.
        type: str
      tls:
        description:
          - Talk to the Sentinels with TLS.
        type: bool
        default: false
      tls_ca_cert:
        description:
          - CA certificate (PEM) used to verify the Sentinels.
        type: path
      tls_client_cert:
        description:
          - Client certificate (PEM) for mutual TLS with the Sentinels. Requires O(sentinel.tls_client_key).
        type: path
      tls_client_key:
        description:
          - Private key (PEM) of O(sentinel.tls_client_cert).
        type: path
      tls_verify:
        description:
          - Verify the Sentinels' certificates and host names.
        type: bool
        default: true
notes:
  - The option names of M(community.general.redis_info) and the other C(community.general) redis modules are aliases
    here - O(host) (C(login_host)), O(port) (C(login_port)), O(username) (C(login_user)), O(password)
    (C(login_password)), O(tls_verify) (C(validate_certs)), O(tls_ca_cert) (C(ca_certs)), O(tls_client_cert)
    (C(client_cert_file)), O(tls_client_key) (C(client_key_file)) - and O(tls) has the same name.
  - The server must have the search module (Redis 8, Redis Stack or Redis Enterprise with search).
  - Redis Cluster is refused when connecting - the search module this collection supports has no coordinator, so an
    index covers only the keys of its own shard. A primary with replicas, behind Sentinel or not, is supported.
  - Modules run where the task runs; delegate to a host that can reach Redis (often C(localhost)).
"""

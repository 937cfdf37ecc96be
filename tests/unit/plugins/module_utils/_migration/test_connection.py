"""Connection settings never put secrets where messages can see them."""
from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.connection import ConnectionSettings


def test_endpoint_has_no_credentials():
    settings = ConnectionSettings(url="redis://app:s3cr%40t@cache.internal:6380/2", password="other")
    assert settings.endpoint == "cache.internal:6380/2"
    assert "s3cr" not in repr(settings) and "other" not in repr(settings)
    assert {"other", "s3cr%40t", "s3cr@t", "redis://app:s3cr%40t@cache.internal:6380/2"} <= set(settings.secrets())


def test_host_settings_and_tls_kwargs():
    settings = ConnectionSettings(host="h", port=7000, db=1, tls=True, tls_verify=False, tls_ca_cert="/ca.pem", protocol=3)
    assert settings.endpoint == "h:7000/1"
    kwargs = settings.client_kwargs()
    assert kwargs["ssl"] is True and kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["protocol"] == 3 and kwargs["decode_responses"] is False
    assert settings.secrets() == []

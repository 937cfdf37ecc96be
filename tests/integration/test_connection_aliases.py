"""The option names users know from community.general's redis modules work here as aliases: login_host,
login_port, login_user, login_password (a secret like password), validate_certs, ca_certs, client_cert_file
and client_key_file, with tls under the same name."""

from __future__ import annotations

from module_args import patch_module_args
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import build_module, connection_settings
from ansible_collections.indexops.redis_search.plugins.modules import redis_write_quiesce

USER, PASSWORD = "alias-user", "Alias-pw-5be1c0de"


def test_login_options_connect_as_that_user_and_keep_the_password_secret(clean_redis, redis_server, tmp_path, capsys):
    clean_redis.execute_command("ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    try:
        result = run_module(
            redis_write_quiesce,
            {
                "login_host": "127.0.0.1",
                "login_port": redis_server.port,
                "login_user": USER,
                "login_password": PASSWORD,
                "state": "quiesced",
                "state_file": str(tmp_path / "state.json"),
                "users": ["default"],
            },
            capsys,
            check_mode=True,
        )
        assert result["migrating_user"] == USER  # whoever ACL WHOAMI says the module connected as
        assert PASSWORD not in result["_raw"]
        if "invocation" in result:  # ansible-core before 2.21 returns it
            assert result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

        wrong = run_module(
            redis_write_quiesce,
            {
                "login_host": "127.0.0.1",
                "login_port": redis_server.port,
                "login_user": USER,
                "login_password": PASSWORD + "-wrong",
                "state": "verified",
                "observe_seconds": 0.2,
                "observe_interval": 0.1,
            },
            capsys,
            expect_failure=True,
        )
        assert wrong["error_type"] == "connection_failed"
        assert PASSWORD not in wrong["_raw"]
    finally:
        clean_redis.execute_command("ACL", "DELUSER", USER)


def test_tls_aliases_reach_the_connection(tmp_path):
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("not read before connecting\n")
    args = {
        "login_host": "redis.internal",
        "login_port": 6380,
        "tls": True,
        "validate_certs": False,
        "ca_certs": str(files["ca"]),
        "client_cert_file": str(files["cert"]),
        "client_key_file": str(files["key"]),
    }
    with patch_module_args(args):
        module = build_module({})
    settings = connection_settings(module)
    assert (settings.host, settings.port, settings.tls, settings.tls_verify) == ("redis.internal", 6380, True, False)
    kwargs = settings.client_kwargs()
    assert kwargs["ssl_ca_certs"] == str(files["ca"])
    assert kwargs["ssl_certfile"] == str(files["cert"])
    assert kwargs["ssl_keyfile"] == str(files["key"])
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False

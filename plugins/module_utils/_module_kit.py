# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of this collection shares with Ansible: connection options, building the
AnsibleModule, dependency checks and turning library errors into `fail_json`, in one place.

The migration library under `_migration/` knows nothing about Ansible; this file is the only
module_utils file that imports it.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Callable, Optional

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import (
    ValidationError,
    missing,
    redis_exceptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    IndexOpsError,
    SchemaInvalid,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.limits import (
    check_text,
    explain_options,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
    connect,
    lost_connection,
)

PIP_NAMES = {"redis": "redis", "pydantic": "pydantic", "PyYAML": "PyYAML", "numpy": "numpy"}
ENV_URL = "REDIS_URL"


def connection_argument_spec() -> dict[str, Any]:
    """Connection options, documented in the indexops.redis_search.connection doc fragment."""
    return {
        "redis_url": {"type": "str", "no_log": True},
        # The aliases are the names community.general's redis modules use, so that their users' module_defaults
        # and habits carry over.
        "host": {"type": "str", "aliases": ["login_host"]},
        "port": {"type": "int", "default": 6379, "aliases": ["login_port"]},
        "db": {"type": "int", "default": 0},
        "username": {"type": "str", "aliases": ["login_user"], "fallback": (env_fallback, ["REDIS_USERNAME"])},
        "password": {
            "type": "str",
            "no_log": True,
            "aliases": ["login_password"],
            "fallback": (env_fallback, ["REDIS_PASSWORD"]),
        },
        "tls": {"type": "bool", "default": False},
        "tls_ca_cert": {"type": "path", "aliases": ["ca_certs"]},
        "tls_client_cert": {"type": "path", "aliases": ["client_cert_file"]},
        "tls_client_key": {"type": "path", "no_log": False, "aliases": ["client_key_file"]},
        "tls_verify": {"type": "bool", "default": True, "aliases": ["validate_certs"]},
        "connect_timeout": {"type": "float", "default": 10.0},
        "socket_timeout": {"type": "float", "default": 60.0},
        "protocol": {"type": "int", "default": 2, "choices": [2, 3]},
    }


def backup_argument_spec() -> dict[str, Any]:
    """Options documented in the indexops.redis_search.backup doc fragment."""
    return {
        "backup_dir": {"type": "path", "required": True},
        "wait_timeout": {"type": "float", "default": 600.0},
    }


def benchmark_argument_spec() -> dict[str, Any]:
    """Options documented in the indexops.redis_search.benchmark doc fragment."""
    return {"benchmark_out": {"type": "path"}}


CONNECTION_MUTUALLY_EXCLUSIVE = [["redis_url", "host"]]
CONNECTION_REQUIRED_TOGETHER = [["tls_client_cert", "tls_client_key"]]
# Library field names that differ from the option names.
OPTION_NAMES = {"url": "redis_url"}


def _option_models() -> tuple:
    """The library models that hold the bounds of the operations' options (limits.py)."""
    # Imported here: only the modules that have such options need them.
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
        MigrateOptions,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import (
        PlanningOptions,
    )

    return PlanningOptions, MigrateOptions


def check_options(module: AnsibleModule) -> None:
    """Refuse out-of-bounds options with one line, before anything connects or runs.

    The rules are the library's (ConnectionSettings, PlanningOptions, MigrateOptions): each option a
    module has is validated by the model that uses it, so every module applies the same bound."""
    params = module.params
    try:
        connection_settings(module)
        for model in _option_models():
            given = {name: params[name] for name in model.model_fields if params.get(name) is not None}
            if given:
                model.model_validate(given)
    except ValidationError as err:
        problem = explain_options(err, OPTION_NAMES)
        module.fail_json(msg=str(problem), error_type=problem.kind, hint=problem.hint)
    try:
        check_names(params)
    except SchemaInvalid as problem:
        module.fail_json(msg=str(problem), error_type=problem.kind, hint=problem.hint)


def check_names(params: dict[str, Any]) -> None:
    """Index and alias names as the server would keep them: it reports a newline back escaped (the index is
    then unreachable by the name it reports) and cuts a name at NUL. Refused before anything connects."""
    if isinstance(params.get("index"), str):
        check_text(params["index"], "index name", "index")
    for name in params.get("indexes") or []:
        check_text(name, "index name", "indexes")
    aliases = params.get("aliases") or []
    for alias in aliases if isinstance(aliases, list) else [a for names in aliases.values() for a in names or []]:
        check_text(alias, "alias", "aliases")


def build_module(
    argument_spec: dict[str, Any],
    libraries: tuple[str, ...] = ("redis", "pydantic", "PyYAML"),
    exactly_one_of: Optional[list[str]] = None,
    **kwargs: Any,
) -> AnsibleModule:
    """AnsibleModule with the connection options merged in, check mode supported; fails early on missing libraries.

    `exactly_one_of`: options of which a task must give one and only one (what the module works from)."""
    spec = connection_argument_spec()
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    if exactly_one_of:
        kwargs["mutually_exclusive"] = [exactly_one_of] + kwargs.get("mutually_exclusive", [])
        kwargs["required_one_of"] = [exactly_one_of] + kwargs.get("required_one_of", [])
    kwargs["mutually_exclusive"] = CONNECTION_MUTUALLY_EXCLUSIVE + kwargs.get("mutually_exclusive", [])
    kwargs["required_together"] = CONNECTION_REQUIRED_TOGETHER + kwargs.get("required_together", [])
    module = AnsibleModule(argument_spec=spec, **kwargs)
    for name, trace in missing(*libraries).items():
        module.fail_json(msg=missing_required_lib(PIP_NAMES.get(name, name)), exception=trace)
    check_options(module)
    return module


def connection_settings(module: AnsibleModule):
    """ConnectionSettings from the module's options; every secret is registered with no_log.

    Precedence: redis_url, then host/port/db, then the REDIS_URL environment variable, then
    localhost:6379. (REDIS_URL is read here, not as an option fallback, so that it never
    conflicts with an explicit host.)
    """
    params = module.params
    url = params["redis_url"] or (None if params["host"] else os.environ.get(ENV_URL) or None)
    settings = ConnectionSettings(
        url=url,
        host=params["host"] or "localhost",
        port=params["port"],
        db=params["db"],
        username=params["username"],
        password=params["password"],
        tls=params["tls"],
        tls_ca_cert=params["tls_ca_cert"],
        tls_client_cert=params["tls_client_cert"],
        tls_client_key=params["tls_client_key"],
        tls_verify=params["tls_verify"],
        connect_timeout=params["connect_timeout"],
        socket_timeout=params["socket_timeout"],
        protocol=params["protocol"],
    )
    for secret in settings.secrets():
        module.no_log_values.add(secret)
    return settings


def fail_from_exception(
    module: AnsibleModule, err: BaseException, endpoint: str, index: str | None = None, **result: Any
) -> None:
    """The one place an exception becomes a failed task: one-line msg, structure in keys."""
    where = f"{endpoint} index {index!r}" if index else endpoint
    if isinstance(err, IndexOpsError):
        result.update(err.details)
        module.fail_json(msg=f"{where}: {err}", error_type=err.kind, hint=err.hint, **result)
    if redis_exceptions is not None and isinstance(err, redis_exceptions.NoPermissionError):
        # ACL refused something the library did not ask about first (reading an index it may not see).
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        hint = (
            "grant the user the commands and the keys (index names and document prefixes) it needs "
            "(ACL SETUSER), or connect as a user that has them"
        )
        module.fail_json(
            msg=f"{where}: the Redis user may not do this: {reason}; nothing was changed; {hint}",
            error_type="permission_denied",
            hint=hint,
            **result,
        )
    if lost_connection(err):
        # After its retries: the server went away or the network dropped it. Every module's work is safe to
        # run again, so that is the way on.
        hint = "check the server and the network, then re-run the same task: it continues where it stopped"
        module.fail_json(
            msg=f"{where}: {lost_connection(err)}; {hint}", error_type="connection_lost", hint=hint, **result
        )
    module.fail_json(
        msg=f"{where}: unexpected {type(err).__name__}: {err}",
        error_type="unexpected",
        exception=traceback.format_exc(),
        **result,
    )


def run_with_client(
    module: AnsibleModule, action: Callable[[Any, Any], dict[str, Any]], index: str | None = None
) -> None:
    """Connect, run `action(client, settings)` and exit with its result, or fail readably."""
    try:
        settings = connection_settings(module)
    except ValidationError as err:  # build_module refused these already; for callers that did not use it
        problem = explain_options(err, OPTION_NAMES)
        module.fail_json(msg=str(problem), error_type=problem.kind, hint=problem.hint)
        return
    try:
        client = connect(settings)
        result = action(client, settings)
    except Exception as err:  # pylint: disable=broad-exception-caught
        fail_from_exception(module, err, settings.endpoint, index)
        return
    module.exit_json(**result)

"""The node's configuration: TOML sections, defaults, OTPY_* overrides, secrets and errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from otpy import ConfigError, OtpyError
from otpy.gateway import DEFAULT_RETRY, HttpDestination, SigningSecret
from otpy.node import NodeConfig, Secret, load_config
from otpy.pressure import Priority, Threshold

KEY = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_KEY = "whsec_" + base64.b64encode(b"o" * 32).decode()

MINIMAL = """
[ingest.routes.orders]
destinations = ["orders"]

[gateway.destinations.orders]
url = "https://orders.example.com/hooks"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otpy.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> NodeConfig:
    return load_config(write(tmp_path, text), environ=environ or {})


# -- defaults and every section ------------------------------------------------------


def test_no_file_gives_the_defaults_in_var() -> None:
    """NODE-6: Without a file the node listens on loopback 8080, admin on 8081, and keeps its files in ./var."""
    config = load_config(None, environ={})
    assert (config.ingest.host, config.ingest.port) == ("127.0.0.1", 8080)
    assert (config.admin.host, config.admin.port, config.admin.token) == ("127.0.0.1", 8081, None)
    assert config.node.journal_path == Path("var/journal.sqlite3")
    assert config.node.outbox_path == Path("var/outbox.sqlite3")
    assert config.node.dead_letters_path == Path("var/dead-letters.sqlite3")
    assert config.node.synchronous == "full"
    assert config.ingest.routes == {}
    assert config.gateway.destinations == {}
    assert (config.drain.budget, config.telemetry.enabled, config.replay.partitions) == (
        30.0,
        True,
        4,
    )
    assert config.source is None


def test_every_section_is_read_from_toml(tmp_path: Path) -> None:
    """Each table of the file lands in its own frozen config object with the values written."""
    config = load(
        tmp_path,
        MINIMAL
        + """
[node]
var_dir = "/srv/otpy"
outbox = "/fast/outbox.db"
synchronous = "NORMAL"

[ingest]
host = "0.0.0.0"
port = 9000
max_body_size = 2048

[ingest.routes.orders.pressure]
capacity = 50
degraded = [0.8, 0.7]
defer = ["low"]
shed_priorities = ["low", "normal"]
throttle = "10ms"

[dead_letters]
sweep_interval = "1m"
ledger_max_age = false

[dead_letters.active]
max_age = "7d"

[replay]
partitions = 8
handler_timeout = "2m"

[admin]
enabled = false
port = 9000

[telemetry]
enabled = false

[drain]
budget = "45s"
""",
    )
    assert config.node.journal_path == Path("/srv/otpy/journal.sqlite3")
    assert config.node.outbox_path == Path("/fast/outbox.db")
    assert config.node.synchronous == "normal"
    assert (config.ingest.host, config.ingest.port, config.ingest.max_body_size) == (
        "0.0.0.0",
        9000,
        2048,
    )
    pressure = config.ingest.routes["orders"].pressure
    policy = pressure.policy()
    assert pressure.capacity == 50
    assert policy.degraded == Threshold(0.8, 0.7)
    assert policy.defer == frozenset({Priority.LOW})
    assert policy.shed_priorities == frozenset({Priority.LOW, Priority.NORMAL})
    assert policy.throttle == 0.01
    retention = config.dead_letters.retention()
    assert (retention.interval, retention.ledger_max_age) == (60.0, None)
    assert (retention.active.max_count, retention.active.max_age) == (None, 7 * 86400.0)
    assert (retention.archived.max_count, retention.archived.max_age) == (100_000, 30 * 86400.0)
    assert (config.replay.partitions, config.replay.handler_timeout) == (8, 120.0)
    assert (config.admin.enabled, config.telemetry.enabled, config.drain.budget) == (
        False,
        False,
        45.0,
    )
    assert config.source == tmp_path / "otpy.toml"


def test_a_destination_builds_its_http_destination_and_policy(tmp_path: Path) -> None:
    """build() and policy() carry every configured value into the gateway's own objects."""
    config = load(
        tmp_path,
        """
[gateway.destinations.orders]
url = "https://orders.example.com/hooks"
method = "put"
headers = { X-Tenant = "acme" }
headers_from_env = { Authorization = "ORDERS_AUTH" }
timeout = "10s"
max_concurrent = 5
max_wait = "250ms"
rate_limit = 20
burst = 4
signing_secrets_env = ["NEW_KEY", "OLD_KEY"]
ordering = "none"
disable_after = false
batch = 8
lease = "2m"
poll_interval = 0.5

[gateway.destinations.orders.retry]
schedule = ["5s", "5m"]
max_retry_after = "10m"

[gateway.destinations.orders.breaker]
window_type = "time"
window_size = 30
wait_in_open = "5m"
""",
        {"ORDERS_AUTH": "Bearer s3cr3t-t0ken", "NEW_KEY": KEY, "OLD_KEY": OLD_KEY},
    )
    destination = config.gateway.destinations["orders"]
    built = destination.build()
    assert isinstance(built, HttpDestination)
    assert (built.name, built.url, built.timeout) == ("orders", destination.url, 10.0)
    assert built.bulkhead.max_concurrent == 5
    assert built.rate_limiter is not None
    assert destination.all_headers() == {"X-Tenant": "acme", "Authorization": "Bearer s3cr3t-t0ken"}
    assert destination.signing_secrets == (SigningSecret(KEY), SigningSecret(OLD_KEY))
    assert "s3cr3t" not in repr(built)
    assert "s3cr3t" not in repr(config)
    policy = destination.policy()
    assert policy.retry.schedule == (5.0, 300.0)
    assert (policy.retry.max_attempts, policy.retry.max_retry_after) == (3, 600.0)
    assert policy.breaker is not None
    assert (policy.breaker.window_type, policy.breaker.window_size) == ("time", 30)
    assert policy.breaker.wait_in_open == 300.0
    assert (policy.ordering, policy.disable_after, policy.batch) == ("none", None, 8)
    assert (policy.lease, policy.poll_interval) == (120.0, 0.5)


def test_a_destination_defaults_to_the_gateway_defaults(tmp_path: Path) -> None:
    """Left out, the retry schedule is DEFAULT_RETRY's and the breaker is on with its defaults."""
    policy = load(tmp_path, MINIMAL).gateway.destinations["orders"].policy()
    assert policy.retry == DEFAULT_RETRY
    assert policy.breaker is not None
    assert policy.disable_after == 5 * 86400.0


def test_exponential_retry_and_no_breaker(tmp_path: Path) -> None:
    """Exponential fields replace the default schedule; breaker.enabled = false means no breaker."""
    config = load(
        tmp_path,
        MINIMAL
        + """
[gateway.destinations.orders.retry]
initial = "2s"
max_backoff = "1m"
max_attempts = 10

[gateway.destinations.orders.breaker]
enabled = false
""",
    )
    policy = config.gateway.destinations["orders"].policy()
    assert policy.retry.schedule is None
    assert (policy.retry.initial, policy.retry.max_backoff, policy.retry.max_attempts) == (
        2.0,
        60.0,
        10,
    )
    assert policy.breaker is None


def test_a_route_reads_its_fan_out_priority_and_secrets(tmp_path: Path) -> None:
    """A route lists several destinations, its priority, and its token and verification secrets."""
    secret_file = tmp_path / "route-token"
    secret_file.write_text("route-token-value\n")
    config = load(
        tmp_path,
        f"""
[ingest.routes.orders]
destinations = ["orders", "audit"]
priority = "critical"
max_body_size = 4096
token_file = "{secret_file}"
signing_secrets_env = "ORDERS_VERIFY"
tolerance = "1m"

[gateway.destinations.orders]
url = "https://orders.example.com/hooks"

[gateway.destinations.audit]
url = "https://audit.example.com/"
""",
        {"ORDERS_VERIFY": KEY},
    )
    route = config.ingest.routes["orders"]
    assert route.destinations == ("orders", "audit")
    assert (route.priority, route.max_body_size, route.tolerance) == (Priority.CRITICAL, 4096, 60.0)
    assert route.token is not None
    assert route.token.reveal() == "route-token-value"
    assert route.signing_secrets == (SigningSecret(KEY),)


# -- environment overrides ----------------------------------------------------------


def test_env_overrides_an_int_a_float_a_bool_and_a_duration(tmp_path: Path) -> None:
    """OTPY_INGEST_PORT, a rate, a switch and a duration override the file, typed by the schema."""
    config = load(
        tmp_path,
        MINIMAL,
        {
            "OTPY_INGEST_PORT": "9090",
            "OTPY_GATEWAY_DESTINATIONS__ORDERS__RATE_LIMIT": "2.5",
            "OTPY_TELEMETRY_ENABLED": "false",
            "OTPY_DRAIN_BUDGET": "1m",
            "OTPY_REPLAY_HANDLER_TIMEOUT": "15",
        },
    )
    assert config.ingest.port == 9090
    assert config.gateway.destinations["orders"].rate_limit == 2.5
    assert config.telemetry.enabled is False
    assert (config.drain.budget, config.replay.handler_timeout) == (60.0, 15.0)


def test_env_overrides_a_list_and_a_nested_destination_key(tmp_path: Path) -> None:
    """A list is comma-separated (or a TOML array); a destination's name sits between double underscores."""
    config = load(
        tmp_path,
        MINIMAL.replace("orders]", "order-events]").replace('["orders"]', '["order-events"]'),
        {
            "OTPY_GATEWAY_DESTINATIONS__ORDER_EVENTS__URL": "https://other.example.com/",
            "OTPY_GATEWAY_DESTINATIONS__ORDER_EVENTS__RETRY_SCHEDULE": "1s, 2s,3s",
            "OTPY_INGEST_ROUTES__ORDER_EVENTS__PRESSURE_SHED_PRIORITIES": '["low", "normal"]',
        },
    )
    destination = config.gateway.destinations["order-events"]
    assert destination.url == "https://other.example.com/"
    assert destination.policy().retry.schedule == (1.0, 2.0, 3.0)
    shed = config.ingest.routes["order-events"].pressure.shed_priorities
    assert shed == frozenset({Priority.LOW, Priority.NORMAL})


def test_env_overrides_apply_without_a_file() -> None:
    """With no file the variables still apply to the defaults."""
    config = load_config(None, environ={"OTPY_NODE_VAR_DIR": "/data", "OTPY_ADMIN_ENABLED": "0"})
    assert config.node.journal_path == Path("/data/journal.sqlite3")
    assert config.admin.enabled is False


def test_a_bad_env_value_names_the_variable_and_the_key(tmp_path: Path) -> None:
    """An override that is not an integer is refused, naming the variable, the key and the value."""
    with pytest.raises(
        ConfigError, match=r"^OTPY_INGEST_PORT: ingest\.port must be an integer, got 'eighty'$"
    ) as caught:
        load(tmp_path, MINIMAL, {"OTPY_INGEST_PORT": "eighty"})
    assert (caught.value.key, caught.value.value) == ("ingest.port", "eighty")


def test_an_env_value_refused_later_still_names_its_variable(tmp_path: Path) -> None:
    """A list element from a variable that is not a duration names the variable and the element's key."""
    with pytest.raises(
        ConfigError,
        match=r"^OTPY_GATEWAY_DESTINATIONS__ORDERS__RETRY_SCHEDULE: "
        r"gateway\.destinations\.orders\.retry\.schedule\[1\] must be .*, got '5x'$",
    ):
        load(tmp_path, MINIMAL, {"OTPY_GATEWAY_DESTINATIONS__ORDERS__RETRY_SCHEDULE": "5s,5x"})


def test_an_unknown_variable_in_a_section_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """A typo in an override is an error with a suggestion, never silently ignored."""
    with pytest.raises(
        ConfigError,
        match=r"^environment: OTPY_INGEST_PROT is not a setting's variable; did you mean OTPY_INGEST_PORT\?$",
    ):
        load(tmp_path, MINIMAL, {"OTPY_INGEST_PROT": "1"})


def test_other_otpy_variables_and_named_secrets_are_left_alone(tmp_path: Path) -> None:
    """OTPY_DB (the CLI's) and a secret variable the config names are not overrides."""
    config = load(
        tmp_path,
        MINIMAL + '\n[admin]\ntoken_env = "OTPY_ADMIN_TOKEN"\n',
        {"OTPY_DB": "x.db", "OTPY_ADMIN_TOKEN": "admin-secret"},
    )
    assert config.admin.token is not None
    assert config.admin.token.reveal() == "admin-secret"


def test_an_override_of_an_undeclared_destination_is_refused(tmp_path: Path) -> None:
    """A variable cannot invent a destination: the file declares it, the variable changes it."""
    with pytest.raises(
        ConfigError,
        match=r"^environment: gateway\.destinations has no 'billing' for OTPY_GATEWAY_DESTINATIONS__BILLING__URL",
    ):
        load(tmp_path, MINIMAL, {"OTPY_GATEWAY_DESTINATIONS__BILLING__URL": "https://x.example/"})


def test_an_env_secret_source_replaces_the_files(tmp_path: Path) -> None:
    """OTPY_ADMIN_TOKEN_ENV replaces the file's token_file: a secret comes from one place."""
    config = load(
        tmp_path,
        MINIMAL + '\n[admin]\ntoken_file = "/nonexistent"\n',
        {"OTPY_ADMIN_TOKEN_ENV": "ADMIN", "ADMIN": "t0ken"},
    )
    assert config.admin.token is not None
    assert config.admin.token.source == "env ADMIN"


# -- secrets -----------------------------------------------------------------------------


def test_a_secret_from_a_file_is_stripped_and_hidden(tmp_path: Path) -> None:
    """A token file's trailing newline is dropped, and the value never shows in repr."""
    (tmp_path / "token").write_text("hunter2-token\n")
    config = load(tmp_path, f'[ingest]\ntoken_file = "{tmp_path / "token"}"\n')
    token = config.ingest.token
    assert isinstance(token, Secret)
    assert token.reveal() == "hunter2-token"
    assert "hunter2" not in repr(config)
    assert repr(token) == f"Secret(file {tmp_path / 'token'}, [redacted])"


def test_a_missing_env_variable_is_an_error_naming_the_key(tmp_path: Path) -> None:
    """token_env naming an unset variable fails before anything starts."""
    with pytest.raises(
        ConfigError,
        match=r": ingest\.token_env names the environment variable 'INGEST_TOKEN', which is not set$",
    ):
        load(tmp_path, '[ingest]\ntoken_env = "INGEST_TOKEN"\n')


def test_an_empty_env_variable_is_an_error(tmp_path: Path) -> None:
    """An empty secret is no secret."""
    with pytest.raises(ConfigError, match=r"admin\.token_env names .* 'ADMIN', which is empty$"):
        load(tmp_path, '[admin]\ntoken_env = "ADMIN"\n', {"ADMIN": "  "})


def test_a_missing_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    """token_file naming no file fails, naming the key and the path."""
    missing = tmp_path / "nope"
    with pytest.raises(
        ConfigError, match=rf"admin\.token_file names the file '{missing}', which does not exist$"
    ):
        load(tmp_path, f'[admin]\ntoken_file = "{missing}"\n')


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    """A secret file holding only a newline is refused."""
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(
        ConfigError, match=r"admin\.token_file names the file '.*empty', which is empty$"
    ):
        load(tmp_path, f'[admin]\ntoken_file = "{tmp_path / "empty"}"\n')


def test_a_header_file_secret_is_read(tmp_path: Path) -> None:
    """headers_from_file reads a header's value from a file."""
    (tmp_path / "auth").write_text("Bearer from-file\n")
    config = load(
        tmp_path,
        MINIMAL + f'headers_from_file = {{ Authorization = "{tmp_path / "auth"}" }}\n',
    )
    assert config.gateway.destinations["orders"].all_headers() == {
        "Authorization": "Bearer from-file"
    }


def test_a_bad_signing_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A signing secret that is not whsec_ text is refused by the gateway's check; the value stays hidden."""
    with pytest.raises(
        ConfigError,
        match=r"^.*: gateway\.destinations\.orders\.signing_secrets_env\[0\] holds no signing secret: "
        r"must be text starting with 'whsec_'",
    ) as caught:
        load(tmp_path, MINIMAL + 'signing_secrets_env = ["KEY"]\n', {"KEY": "plain-text-key"})
    assert caught.value.value == "[redacted]"
    assert "plain-text-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ('[ingest]\ntoken = "abc"\n', r"ingest\.token", "token_env .* or token_file"),
        (
            MINIMAL + 'signing_secrets = ["whsec_x"]\n',
            r"gateway\.destinations\.orders\.signing_secrets",
            "signing_secrets_env",
        ),
        ('[admin]\ntoken = "abc"\n', r"admin\.token", "token_env"),
    ],
)
def test_a_secret_written_in_the_file_is_refused(
    tmp_path: Path, text: str, key: str, fix: str
) -> None:
    """NODE-6: A secret value in the TOML itself is refused, saying where to put it instead."""
    with pytest.raises(
        ConfigError, match=rf": {key} is a secret, which is never written in the config: .*{fix}"
    ) as caught:
        load(tmp_path, text)
    assert caught.value.value == "[redacted]"
    assert "abc" not in str(caught.value)


def test_a_credential_header_in_plain_headers_is_refused(tmp_path: Path) -> None:
    """headers = {Authorization = ...} would put a credential in the file: use headers_from_env."""
    with pytest.raises(
        ConfigError,
        match=r"gateway\.destinations\.orders\.headers\.Authorization looks like a credential.*headers_from_env",
    ):
        load(tmp_path, MINIMAL + 'headers = { Authorization = "Bearer abc" }\n')


# -- errors -------------------------------------------------------------------------


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """A typo in a key is an error naming the full key and the closest setting."""
    with pytest.raises(
        ConfigError,
        match=r"^.*otpy\.toml: gateway\.destinations\.orders\.max_concurent is not a setting of "
        r"\[gateway\.destinations\.orders\]; did you mean 'max_concurrent'\?$",
    ):
        load(tmp_path, MINIMAL + "max_concurent = 3\n")


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    """A misspelt table at the top level is an error too."""
    with pytest.raises(
        ConfigError, match=r"ingets is not a setting of the top level; did you mean 'ingest'\?$"
    ):
        load(tmp_path, "[ingets]\nport = 1\n")


def test_a_wrong_type_names_the_key_the_value_and_what_is_allowed(tmp_path: Path) -> None:
    """A string where an integer belongs is refused, naming all three."""
    with pytest.raises(
        ConfigError,
        match=r"otpy\.toml: ingest\.port must be an integer >= 0 and <= 65535, got '8080'$",
    ) as caught:
        load(tmp_path, '[ingest]\nport = "8080"\n')
    assert (caught.value.key, caught.value.value) == ("ingest.port", "8080")
    assert isinstance(caught.value, OtpyError)
    assert isinstance(caught.value, ValueError)


def test_the_librarys_own_check_names_the_toml_key(tmp_path: Path) -> None:
    """A retry delay the gateway refuses is reported at its TOML key, list index included."""
    with pytest.raises(
        ConfigError,
        match=r"gateway\.destinations\.orders\.retry\.schedule\[2\] must be .*, got '5x'$",
    ) as caught:
        load(
            tmp_path,
            MINIMAL + '[gateway.destinations.orders.retry]\nschedule = ["5s", "5m", "5x"]\n',
        )
    assert caught.value.value == "5x"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'url = "ftp://x"\n',
            r"gateway\.destinations\.orders\.url must be an http:// or https:// URL",
        ),
        ("lease = 0\n", r"gateway\.destinations\.orders\.lease must be a finite number > 0, got 0"),
        (
            '[gateway.destinations.orders.retry]\nschedule = ["1s"]\ninitial = 2\n',
            r"gateway\.destinations\.orders\.retry\.initial applies to the exponential backoff only",
        ),
        (
            "[gateway.destinations.orders.breaker]\nfailure_rate_threshold = 0\n",
            r"gateway\.destinations\.orders\.breaker\.failure_rate_threshold ",
        ),
        (
            "[ingest.routes.orders.pressure]\nwarn = [0.5, 0.6]\n",
            r"ingest\.routes\.orders\.pressure\.warn\[1\] must be in \[0, warn\.enter=0\.5\]",
        ),
    ],
)
def test_library_refusals_are_config_errors_at_their_keys(
    tmp_path: Path, extra: str, message: str
) -> None:
    """The gateway's and the pressure policy's validation runs at load, re-raised at the TOML key."""
    text = (
        MINIMAL.replace('url = "https://orders.example.com/hooks"\n', "")
        if extra.startswith("url")
        else MINIMAL
    )
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text + extra)


def test_a_route_naming_an_unknown_destination_is_refused(tmp_path: Path) -> None:
    """A route's destination must be declared; the closest name is suggested."""
    with pytest.raises(
        ConfigError,
        match=r"ingest\.routes\.orders\.destinations\[0\] names no destination in "
        r"\[gateway\.destinations\]; did you mean 'orders'\?$",
    ):
        load(tmp_path, MINIMAL.replace('["orders"]', '["order"]'))


def test_a_route_with_no_destination_is_refused(tmp_path: Path) -> None:
    """A route must send its messages somewhere."""
    with pytest.raises(
        ConfigError,
        match=r"ingest\.routes\.orders\.destinations must name at least one destination",
    ):
        load(tmp_path, MINIMAL.replace('["orders"]', "[]"))


def test_a_destination_without_url_is_refused(tmp_path: Path) -> None:
    """url is required."""
    with pytest.raises(ConfigError, match=r"gateway\.destinations\.orders\.url is required"):
        load(tmp_path, MINIMAL.replace('url = "https://orders.example.com/hooks"', "timeout = 1"))


def test_two_listeners_on_one_port_are_refused(tmp_path: Path) -> None:
    """The admin API may not bind the ingest's port (a wildcard host overlaps every other)."""
    with pytest.raises(
        ConfigError, match=r"admin\.port is the port the ingest listens on \(0\.0\.0\.0:8080\)"
    ):
        load(tmp_path, '[ingest]\nhost = "0.0.0.0"\n[admin]\nport = 8080\n')


def test_two_listeners_on_different_hosts_may_share_a_port(tmp_path: Path) -> None:
    """Two distinct specific addresses do not collide on one port."""
    config = load(tmp_path, '[ingest]\nhost = "10.0.0.1"\n[admin]\nport = 8080\n')
    assert config.admin.port == config.ingest.port == 8080


def test_a_bad_name_is_refused(tmp_path: Path) -> None:
    """A destination's name must be usable in a variable: lowercase words joined by _ or -."""
    with pytest.raises(
        ConfigError, match=r"gateway\.destinations\.Orders is not a destination name"
    ):
        load(tmp_path, '[gateway.destinations.Orders]\nurl = "https://x.example/"\n')


def test_names_that_collide_in_variables_are_refused(tmp_path: Path) -> None:
    """order-events and order_events would share one variable name."""
    with pytest.raises(ConfigError, match=r"cannot be told apart from 'order-events'"):
        load(
            tmp_path,
            '[gateway.destinations.order-events]\nurl = "https://x.example/"\n'
            '[gateway.destinations.order_events]\nurl = "https://y.example/"\n',
        )


def test_an_unreadable_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    """A missing file or a syntax error is one ConfigError, before anything else."""
    with pytest.raises(
        ConfigError, match=r"config file cannot be read: No such file or directory$"
    ):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match=r"config file is not valid TOML: "):
        load(tmp_path, "[ingest\n")


def test_from_mapping_reads_a_parsed_document() -> None:
    """Tests and tools can pass a mapping; errors then carry no file name."""
    config = NodeConfig.from_mapping({"ingest": {"port": 1234}}, environ={})
    assert config.ingest.port == 1234
    with pytest.raises(ConfigError, match=r"^ingest\.port must be an integer"):
        NodeConfig.from_mapping({"ingest": {"port": True}}, environ={})

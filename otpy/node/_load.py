"""Reading ``otpy.toml`` and the ``OTPY_*`` variables into a :class:`NodeConfig`.

Three passes, each stopping at the first problem with a :class:`~otpy.ConfigError`
naming the key: the environment's overrides are written into the parsed document
(each remembered, so an error names the variable it came from); the document is
read against the settings' declarations (types, unknown keys, secrets); then the
cross-references are checked and every library object is built once, so its own
validation runs and its refusal names the TOML key.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn, Protocol, cast

import attrs

from .._check import short
from .._exceptions import ConfigError, InvalidArgument, InvalidPressurePolicy
from .._redact import REDACTED
from ..gateway import SigningSecret
from . import _schema as k
from ._config import DestinationConfig, NodeConfig
from ._schema import ENV_PREFIX, NAME, Bad, Kind, Named, Secret, SecretKind, Section, settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from attrs import AttrsInstance

__all__ = ["EnvVariable", "env_table", "env_variables", "from_mapping", "load_config"]

MAX_PARTITIONS: Final = 1024

# Header names whose values are credentials: refused in `headers`, which is not secret.
_SECRET_HEADER: Final = re.compile(
    r"(?i)auth|cookie|token|secret|passw|signature|api[-_]?key|access[-_]?key|session"
)


def env_name(name: str) -> str:
    """A route's or destination's name as it is written in a variable: ``order-events`` -> ``ORDER_EVENTS``."""
    return name.upper().replace("-", "_")


def _secret_keys(field: attrs.Attribute[object]) -> tuple[str, str]:
    kind = field.metadata["kind"]
    assert isinstance(kind, SecretKind)
    if kind.table:
        base = field.name.removeprefix("secret_")
        return (f"{base}_from_env", f"{base}_from_file")
    return (f"{field.name}_env", f"{field.name}_file")


def _keys(cls: type) -> dict[str, attrs.Attribute[object]]:
    """Every key a table of *cls* may hold, with the setting it belongs to."""
    found: dict[str, attrs.Attribute[object]] = {}
    for field in settings(cls):
        if isinstance(field.metadata["kind"], SecretKind):
            for key in _secret_keys(field):
                found[key] = field
        else:
            found[field.name] = field
    return found


# The variables ------------------------------------------------------------------


@attrs.frozen
class EnvVariable:
    """One environment variable that overrides a setting.

    Attributes:
        name: the variable, like ``OTPY_INGEST_PORT`` or
            ``OTPY_GATEWAY_DESTINATIONS__<NAME>__URL``.
        key: the TOML key it overrides, like ``ingest.port``.
        type: what it holds, as the docs say it.
        default: the setting's default, as the docs show it.
        doc: what the setting is.

    .. versionadded:: 0.2.0
    """

    name: str
    key: str
    type: str
    default: str
    doc: str


class _HasFactory(Protocol):
    factory: Callable[[], object]


def _section_default(field: attrs.Attribute[object]) -> object:
    """The value a section's field has when its table is left out."""
    return cast("_HasFactory", field.default).factory()


def _walk(
    cls: type, path: tuple[str, ...], env: str, instance: object = None
) -> Iterator[EnvVariable]:
    for field in settings(cls):
        kind = field.metadata["kind"]
        key_path = (*path, field.name)
        if isinstance(kind, Section):
            inner = _section_default(field)
            yield from _walk(kind.cls, key_path, f"{env}{field.name.upper()}_", inner)
        elif isinstance(kind, Named):
            yield from _walk(
                kind.cls, (*key_path, "<name>"), f"{env}{field.name.upper()}__<NAME>__"
            )
        elif isinstance(kind, SecretKind):
            what = "table of variable names" if kind.table else "variable name"
            files = "table of paths" if kind.table else "path"
            if kind.many:
                what, files = "list of variable names", "list of paths"
            for key, label in zip(_secret_keys(field), (what, files), strict=True):
                holder = "variable" if key.endswith("env") else "file"
                doc = f"{field.metadata['doc']}: the {holder} holding it"
                yield EnvVariable(f"{env}{key.upper()}", ".".join((*path, key)), label, "none", doc)
        else:
            assert isinstance(kind, Kind)
            yield EnvVariable(
                f"{env}{field.name.upper()}",
                ".".join(key_path),
                kind.label,
                k.shown_default(
                    field, field.default if instance is None else getattr(instance, field.name)
                ),
                field.metadata["doc"],
            )


def env_variables() -> tuple[EnvVariable, ...]:
    """Return every ``OTPY_*`` variable that overrides a setting, in the file's order.

    A route's or destination's variables hold ``<NAME>``: its name in capitals,
    ``-`` written ``_``.

    .. versionadded:: 0.2.0
    """
    return tuple(_walk(NodeConfig, (), ENV_PREFIX))


def env_table() -> str:
    """Return the Markdown table of every ``OTPY_*`` variable (the one in ``docs/node.md``).

    .. versionadded:: 0.2.0
    """
    lines = ["| Variable | Key | Type | Default | Meaning |", "| --- | --- | --- | --- | --- |"]
    lines.extend(
        f"| `{v.name}` | `{v.key}` | {v.type} | `{v.default}` | {v.doc} |" for v in env_variables()
    )
    return "\n".join(lines) + "\n"


# Loading -------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str] | None, *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """Return the node's configuration: the TOML file at *path*, then the environment's overrides.

    Args:
        path: the ``otpy.toml`` file, or ``None`` for the defaults (files in ``./var``).
        environ: the environment, for ``OTPY_*`` overrides and secrets
            (``None``: ``os.environ``).

    Returns:
        The configuration, checked: every value, secret and cross-reference.

    Raises:
        ConfigError: the file cannot be read or parsed, or a key or a value is not
            allowed; the message names the key, the value and what is allowed.

    .. versionadded:: 0.2.0
    """
    if path is None:
        return from_mapping({}, environ=environ, source=None)
    where = os.fspath(path)
    try:
        with open(where, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(
            "config file", where, f"cannot be read: {exc.strerror or exc}", source=where
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config file", where, f"is not valid TOML: {exc}", source=where) from None
    config = from_mapping(data, environ=environ, source=where)
    return attrs.evolve(config, source=Path(where))


def from_mapping(
    data: Mapping[str, object], *, environ: Mapping[str, str] | None, source: str | None
) -> NodeConfig:
    """:meth:`NodeConfig.from_mapping`: see there."""
    loader = _Loader(os.environ if environ is None else environ, source)
    raw = copy.deepcopy(dict(data))
    loader.override(raw)
    config = loader.section(NodeConfig, raw, ())
    assert isinstance(config, NodeConfig)
    loader.check(config)
    return config


class _Loader:
    def __init__(self, environ: Mapping[str, str], source: str | None) -> None:
        self.environ = environ
        self.source = source
        self.origins: dict[str, str] = {}

    def fail(self, key: str, value: object, allowed: str) -> NoReturn:
        origin = self.origins.get(key) or self.origins.get(key.split("[", 1)[0]) or self.source
        raise ConfigError(key, value, allowed, source=origin)

    # The environment -----------------------------------------------------------

    def override(self, raw: dict[str, object]) -> None:
        fixed: dict[str, tuple[str, ...]] = {}
        named: list[tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]] = []
        _index(NodeConfig, (), ENV_PREFIX, fixed, named)
        sections = tuple(f"{ENV_PREFIX}{f.name.upper()}_" for f in settings(NodeConfig))
        unknown: list[str] = []
        for variable in sorted(self.environ):
            if not variable.startswith(ENV_PREFIX):
                continue
            text = self.environ[variable]
            if variable in fixed:
                self._apply(raw, fixed[variable], text, variable)
                continue
            for prefix, table_path, inner in named:
                if variable.startswith(prefix) and "__" in variable[len(prefix) :]:
                    wanted, _, rest = variable[len(prefix) :].partition("__")
                    if rest not in inner:
                        self._unknown(variable, [f"{prefix}{wanted}__{r}" for r in inner])
                    name = self._named(raw, table_path, wanted, variable)
                    self._apply(raw, (*table_path, name, *inner[rest]), text, variable)
                    break
            else:
                if variable.startswith(sections):
                    unknown.append(variable)
        referenced = set(_references(raw))
        for variable in unknown:
            if variable not in referenced:
                self._unknown(variable, [*fixed, *(p + "<NAME>__" for p, _, _ in named)])

    def _unknown(self, variable: str, candidates: list[str]) -> NoReturn:
        close = difflib.get_close_matches(variable, candidates, n=1)
        hint = f"; did you mean {close[0]}?" if close else "; docs/node.md lists the variables"
        raise ConfigError(
            variable, REDACTED, f"is not a setting's variable{hint}", source="environment"
        )

    def _named(
        self, raw: dict[str, object], path: tuple[str, ...], wanted: str, variable: str
    ) -> str:
        table = _get(raw, path)
        names = list(table) if isinstance(table, dict) else []
        for name in names:
            if env_name(name) == wanted:
                return name
        key = ".".join(path)
        raise ConfigError(
            key,
            wanted.lower(),
            f"has no {wanted.lower()!r} for {variable} to override; add "
            f"[{key}.{wanted.lower()}] to the config file (variables change what the file "
            "declares)",
            source="environment",
        )

    def _apply(
        self, raw: dict[str, object], path: tuple[str, ...], text: str, variable: str
    ) -> None:
        parent = _get(raw, path[:-1], create=True)
        field = _field(path)
        kind = field.metadata["kind"]
        key = ".".join(path)
        self.origins[key] = variable
        try:
            if isinstance(kind, SecretKind):
                value: object = (
                    k.TABLE.from_env(text)
                    if kind.table
                    else (k.NAMES.from_env(text) if kind.many else text)
                )
                if not kind.table:  # one source replaces the other
                    for other in _secret_keys(field):
                        parent.pop(other, None)
            else:
                assert isinstance(kind, Kind)
                value = kind.from_env(text)
        except Bad as exc:
            shown = REDACTED if isinstance(kind, SecretKind) else text
            raise ConfigError(key, shown, exc.allowed, source=variable) from None
        parent[path[-1]] = value

    # The document --------------------------------------------------------------

    def section(
        self,
        cls: type,
        table: object,
        path: tuple[str, ...],
        *,
        base: object = None,
        **extra: object,
    ) -> object:
        where = ".".join(path)
        if table is None:
            table = {}
        if not isinstance(table, dict):
            self.fail(where, short(table), f"must be a table ([{where}]), got {short(table)}")
        keys = _keys(cls)
        for key in table:
            if key not in keys:
                self._refuse(cls, table, key, path, keys)
        values: dict[str, object] = {}
        for field in settings(cls):
            kind = field.metadata["kind"]
            key = ".".join((*path, field.name))
            if isinstance(kind, Section):
                values[field.name] = self.section(
                    kind.cls,
                    table.get(field.name),
                    (*path, field.name),
                    base=_section_default(field),
                )
            elif isinstance(kind, Named):
                values[field.name] = self._named_tables(
                    kind, table.get(field.name, {}), (*path, field.name)
                )
            elif isinstance(kind, SecretKind):
                secret = self._secret(field, kind, table, path)
                if secret is not None:
                    values[field.name] = secret
            elif field.name in table:
                assert isinstance(kind, Kind)
                value = table[field.name]
                try:
                    values[field.name] = kind.check(value)
                except Bad as exc:
                    if exc.index is not None:
                        self.fail(f"{key}[{exc.index}]", exc.value, exc.allowed)
                    self.fail(key, value, exc.allowed)
            elif field.default is attrs.NOTHING:
                self.fail(key, None, f"is required: {field.metadata['doc']}")
        if cls is DestinationConfig:
            self._check_headers(values.get("headers", {}), path)
        if base is not None:  # a section's defaults are its parent's factory's
            values = {**attrs.asdict(cast("AttrsInstance", base), recurse=False), **values}
        return cls(**values, **extra)

    def _refuse(
        self,
        cls: type,
        table: dict[str, object],
        key: str,
        path: tuple[str, ...],
        keys: dict[str, attrs.Attribute[object]],
    ) -> NoReturn:
        full = ".".join((*path, key))
        secrets = {f.name: f for f in settings(cls) if isinstance(f.metadata["kind"], SecretKind)}
        if key in secrets:
            env, file = _secret_keys(secrets[key])
            self.fail(
                full,
                REDACTED,
                "is a secret, which is never written in the config: name where to read it "
                f"with {env} (an environment variable) or {file} (a file)",
            )
        what = f"[{'.'.join(path)}]" if path else "the top level"
        close = difflib.get_close_matches(key, list(keys), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the settings are: {', '.join(keys)}"
        self.fail(full, REDACTED, f"is not a setting of {what}; {hint}")

    def _named_tables(self, kind: Named, table: object, path: tuple[str, ...]) -> dict[str, object]:
        where = ".".join(path)
        if not isinstance(table, dict):
            self.fail(where, short(table), f"must be a table of {kind.what}s, got {short(table)}")
        found: dict[str, object] = {}
        seen: dict[str, str] = {}
        for name, inner in table.items():
            if not NAME.fullmatch(name):
                self.fail(
                    f"{where}.{name}",
                    name,
                    f"is not a {kind.what} name: use lowercase letters and digits, words "
                    f"joined by one '_' or '-' (like 'order-events'), got {name!r}",
                )
            if env_name(name) in seen:
                self.fail(
                    f"{where}.{name}",
                    name,
                    f"cannot be told apart from {seen[env_name(name)]!r} in environment "
                    "variables (both are written "
                    f"{env_name(name)}); rename one",
                )
            seen[env_name(name)] = name
            found[name] = self.section(kind.cls, inner, (*path, name), name=name)
        return found

    def _secret(
        self,
        field: attrs.Attribute[object],
        kind: SecretKind,
        table: dict[str, object],
        path: tuple[str, ...],
    ) -> object:
        env_key, file_key = _secret_keys(field)
        given = [key for key in (env_key, file_key) if key in table]
        if kind.table:
            secrets: dict[str, Secret] = {}
            for key in given:
                full = ".".join((*path, key))
                names = table[key]
                if not isinstance(names, dict) or not all(
                    isinstance(v, str) for v in names.values()
                ):
                    self.fail(
                        full,
                        short(names),
                        f"must be a table of header names to strings, got {short(names)}",
                    )
                for header, where in names.items():
                    if header in secrets:
                        self.fail(
                            f"{full}.{header}",
                            where,
                            "is set by both headers_from_env and headers_from_file",
                        )
                    secrets[header] = self._read(f"{full}.{header}", where, env=key == env_key)
            return secrets
        if len(given) == 2:
            self.fail(
                ".".join((*path, file_key)),
                table[file_key],
                f"is given together with {env_key}: a secret comes from one place",
            )
        if not given:
            return None
        key = given[0]
        full = ".".join((*path, key))
        value = table[key]
        if not kind.many:
            if not isinstance(value, str):
                self.fail(full, short(value), f"must be a string, got {short(value)}")
            return self._read(full, value, env=key == env_key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
            self.fail(
                full, short(value), f"must be a non-empty list of strings, got {short(value)}"
            )
        found = []
        for index, where in enumerate(value):
            item = f"{full}[{index}]"
            text = self._read(item, where, env=key == env_key).reveal()
            try:
                found.append(SigningSecret(text))
            except InvalidArgument as exc:
                self.fail(item, REDACTED, f"holds no signing secret: {exc.problem}")
        return tuple(found)

    def _read(self, key: str, where: str, *, env: bool) -> Secret:
        if not where.strip():
            self.fail(key, where, "must name " + ("an environment variable" if env else "a file"))
        if env:
            value = self.environ.get(where)
            if value is None:
                self.fail(key, where, f"names the environment variable {where!r}, which is not set")
            if not value.strip():
                self.fail(key, where, f"names the environment variable {where!r}, which is empty")
            return Secret(f"env {where}", value.strip())
        try:
            text = Path(where).read_text(encoding="utf-8")
        except FileNotFoundError:
            self.fail(key, where, f"names the file {where!r}, which does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            self.fail(key, where, f"names the file {where!r}, which cannot be read: {reason}")
        if not text.strip():
            self.fail(key, where, f"names the file {where!r}, which is empty")
        return Secret(f"file {where}", text.strip())

    def _check_headers(self, headers: object, path: tuple[str, ...]) -> None:
        assert isinstance(headers, dict)
        for header in headers:
            if _SECRET_HEADER.search(header):
                self.fail(
                    ".".join((*path, "headers", header)),
                    REDACTED,
                    "looks like a credential, which is never written in the config: "
                    "name where to read it with headers_from_env or headers_from_file",
                )

    # Cross-references and the library's own checks ---------------------------------

    def check(self, config: NodeConfig) -> None:
        destinations = config.gateway.destinations
        for route in config.ingest.routes.values():
            key = f"ingest.routes.{route.name}.destinations"
            if not route.destinations:
                self.fail(
                    key, [], "must name at least one destination: where the route's messages go"
                )
            for index, name in enumerate(route.destinations):
                if name in route.destinations[:index]:
                    self.fail(f"{key}[{index}]", name, f"names {name!r} twice")
                if name not in destinations:
                    close = difflib.get_close_matches(name, list(destinations), n=1)
                    hint = (
                        f"did you mean {close[0]!r}?"
                        if close
                        else f"declare it as [gateway.destinations.{name}]"
                        if not destinations
                        else f"the destinations are: {', '.join(destinations)}"
                    )
                    self.fail(
                        f"{key}[{index}]",
                        name,
                        f"names no destination in [gateway.destinations]; {hint}",
                    )
            self._library(
                f"ingest.routes.{route.name}.pressure", route.pressure, route.pressure.policy
            )
        backfill = config.ingest.backfill
        self._library("ingest.backfill", backfill, backfill.policy)
        for destination in destinations.values():
            prefix = f"gateway.destinations.{destination.name}"
            self._library(f"{prefix}.retry", destination.retry, destination.retry.policy)
            self._library(f"{prefix}.breaker", destination.breaker, destination.breaker.policy)
            self._library(prefix, destination, destination.policy)
            self._library(prefix, destination, destination.build)
        letters = config.dead_letters
        self._library("dead_letters.active", letters.active, letters.active.rule)
        self._library("dead_letters.archived", letters.archived, letters.archived.rule)
        self._library("dead_letters", letters, letters.retention)
        if config.replay.partitions > MAX_PARTITIONS:
            self.fail(
                "replay.partitions",
                config.replay.partitions,
                f"must be at most {MAX_PARTITIONS}, got {config.replay.partitions}",
            )
        ingest, admin = config.ingest, config.admin
        if admin.enabled and ingest.port == admin.port != 0 and _overlap(ingest.host, admin.host):
            self.fail(
                "admin.port",
                admin.port,
                f"is the port the ingest listens on ({ingest.host}:{ingest.port}); give each its own",
            )

    def _library(self, prefix: str, owner: object, build: Callable[[], object]) -> None:
        try:
            build()
        except InvalidPressurePolicy as exc:
            field = exc.field.replace(".enter", "[0]").replace(".exit", "[1]")
            self.fail(f"{prefix}.{field}", _value(owner, field), exc.problem)
        except InvalidArgument as exc:
            argument = {"interval": "sweep_interval", "signing_secrets": "signing_secrets_env"}.get(
                exc.argument, exc.argument
            )
            self.fail(f"{prefix}.{argument}", _value(owner, argument), exc.problem)


def _value(owner: object, argument: str) -> object:
    name, _, index = argument.partition("[")
    value = getattr(owner, name, None)
    if index and isinstance(value, tuple):
        position = int(index.rstrip("]"))
        return value[position] if position < len(value) else None
    if name == "headers":
        return REDACTED  # it holds the secret headers too
    return value


_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::", "*"})


def _overlap(first: str, second: str) -> bool:
    """Whether listeners on *first* and *second*, on one port, would collide."""
    return first == second or first in _WILDCARDS or second in _WILDCARDS


def _index(
    cls: type,
    path: tuple[str, ...],
    env: str,
    fixed: dict[str, tuple[str, ...]],
    named: list[tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]],
) -> None:
    for field in settings(cls):
        kind = field.metadata["kind"]
        if isinstance(kind, Section):
            _index(kind.cls, (*path, field.name), f"{env}{field.name.upper()}_", fixed, named)
        elif isinstance(kind, Named):
            inner: dict[str, tuple[str, ...]] = {}
            _index(kind.cls, (), "", inner, named)
            named.append((f"{env}{field.name.upper()}__", (*path, field.name), inner))
        elif isinstance(kind, SecretKind):
            for key in _secret_keys(field):
                fixed[f"{env}{key.upper()}"] = (*path, key)
        else:
            fixed[f"{env}{field.name.upper()}"] = (*path, field.name)


def _field(path: tuple[str, ...]) -> attrs.Attribute[object]:
    """The setting at *path* (a route's or destination's name included)."""
    cls: type = NodeConfig
    index = 0
    while True:
        keys = _keys(cls)
        field = keys[path[index]]
        kind = field.metadata["kind"]
        if isinstance(kind, Section):
            cls, index = kind.cls, index + 1
        elif isinstance(kind, Named):
            cls, index = kind.cls, index + 2
        else:
            return field


def _get(
    raw: dict[str, object], path: tuple[str, ...], *, create: bool = False
) -> dict[str, object]:
    table: object = raw
    for key in path:
        assert isinstance(table, dict)
        if key not in table and create:
            table[key] = {}
        table = table.get(key, {})
        if not isinstance(table, dict):
            return {}  # the document's own value is wrong: reading it says so
    assert isinstance(table, dict)
    return table


def _references(raw: object) -> Iterator[str]:
    """Every environment variable the document names as a secret's source."""
    if not isinstance(raw, dict):
        return
    for key, value in raw.items():
        if key.endswith("_env") and isinstance(value, str):
            yield value
        elif key.endswith("_env") and isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))
        elif key.endswith("_from_env") and isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, str))
        else:
            yield from _references(value)

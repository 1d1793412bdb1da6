"""The messaging node's configuration: one TOML file, ``OTPY_*`` overrides, secrets from outside.

:func:`load_config` reads ``otpy.toml`` (or nothing: the defaults, with files in
``./var``), applies the ``OTPY_*`` environment variables (:func:`env_variables`
lists them; :func:`env_table` writes the table of ``docs/node.md``), reads every
secret from the environment variable or the file the config names, and checks it
all before anything starts. The first problem is a :class:`~otpy.ConfigError`
naming the key, the value and what is allowed.

The result is a frozen :class:`NodeConfig` tree; the objects the node runs on come
from its methods: :meth:`DestinationConfig.build` (an
:class:`~otpy.gateway.HttpDestination`), :meth:`DestinationConfig.policy` (its
:class:`~otpy.gateway.DeliveryPolicy`), :meth:`PressureConfig.policy` and
:meth:`DeadLettersConfig.retention`.

The admin API: :class:`AdminApp` (status, destinations, dead letters and their
replay, over HTTP, behind a bearer token) and :class:`AdminServer`, which serves it
with Hypercorn as a supervised actor (:func:`admin_server_spec`).
"""

from __future__ import annotations

from ._admin import AdminApp as AdminApp
from ._admin import AdminServer as AdminServer
from ._admin import admin_server_spec as admin_server_spec
from ._config import AdminConfig as AdminConfig
from ._config import BackfillConfig as BackfillConfig
from ._config import BreakerConfig as BreakerConfig
from ._config import DeadLettersConfig as DeadLettersConfig
from ._config import DestinationConfig as DestinationConfig
from ._config import DrainConfig as DrainConfig
from ._config import GatewayConfig as GatewayConfig
from ._config import IngestConfig as IngestConfig
from ._config import NodeConfig as NodeConfig
from ._config import PressureConfig as PressureConfig
from ._config import ReplayWorkersConfig as ReplayWorkersConfig
from ._config import RetentionRuleConfig as RetentionRuleConfig
from ._config import RetryConfig as RetryConfig
from ._config import RouteConfig as RouteConfig
from ._config import StoresConfig as StoresConfig
from ._config import TelemetryConfig as TelemetryConfig
from ._load import EnvVariable as EnvVariable
from ._load import env_table as env_table
from ._load import env_variables as env_variables
from ._load import load_config as load_config
from ._parts import NodeParts as NodeParts
from ._parts import node_parts as node_parts
from ._schema import ENV_PREFIX as ENV_PREFIX
from ._schema import Secret as Secret

__all__ = [
    "ENV_PREFIX",
    "AdminApp",
    "AdminConfig",
    "BackfillConfig",
    "AdminServer",
    "BreakerConfig",
    "DeadLettersConfig",
    "DestinationConfig",
    "DrainConfig",
    "EnvVariable",
    "GatewayConfig",
    "IngestConfig",
    "NodeConfig",
    "NodeParts",
    "PressureConfig",
    "ReplayWorkersConfig",
    "RetentionRuleConfig",
    "RetryConfig",
    "RouteConfig",
    "Secret",
    "StoresConfig",
    "TelemetryConfig",
    "admin_server_spec",
    "env_table",
    "env_variables",
    "load_config",
    "node_parts",
]

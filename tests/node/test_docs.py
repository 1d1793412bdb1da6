"""The docs and the example follow the schema: the variables' table and examples/otpy.toml."""

from __future__ import annotations

import base64
from pathlib import Path

from otpy.node import env_table, env_variables, load_config

ROOT = Path(__file__).resolve().parent.parent.parent
START = "<!-- env-table:start -->\n"
END = "<!-- env-table:end -->"


def test_the_docs_table_is_the_generated_one() -> None:
    """docs/node.md holds exactly env_table(): regenerate it when a setting changes."""
    text = (ROOT / "docs" / "node.md").read_text()
    documented = text.split(START, 1)[1].split(END, 1)[0]
    assert documented.strip() == env_table().strip()


def test_every_variable_name_is_distinct() -> None:
    """No two settings share a variable: the naming rule is unambiguous."""
    names = [variable.name for variable in env_variables()]
    assert len(names) == len(set(names))
    assert all(name.startswith("OTPY_") for name in names)


def test_the_example_config_loads(tmp_path: Path) -> None:
    """examples/otpy.toml is a valid config once its secrets exist."""
    key = "whsec_" + base64.b64encode(b"e" * 32).decode()
    token = tmp_path / "admin-token"
    token.write_text("admin\n")
    text = (ROOT / "examples" / "otpy.toml").read_text()
    path = tmp_path / "otpy.toml"
    path.write_text(text.replace("/run/secrets/otpy-admin-token", str(token)))
    environ = {
        "OTPY_INGEST_TOKEN": "ingest",
        "ORDERS_WEBHOOK_SECRET": key,
        "ORDERS_SIGNING_SECRET": key,
        "ORDERS_API_AUTHORIZATION": "Bearer example",
    }
    config = load_config(path, environ=environ)
    assert config.ingest.routes["orders"].destinations == ("orders-api", "audit")
    assert config.gateway.destinations["audit"].policy().retry.max_attempts == 10

"""``${keyring:SERVICE/NAME}`` references and ``discovery-router secret set|delete``, with a real keyring backend.

The backend is keyrings.alt's file keyring (a real ``keyring`` backend, kept
in the test's own folder), chosen the standard way: ``PYTHON_KEYRING_BACKEND``
for subprocesses, ``keyring.set_keyring`` in process. The fail backend
stands in for a headless Linux box.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from discovery_router.config.loader import parse_config
from discovery_router.errors import ConfigError
from discovery_router.router import Router
from tests.conftest import FAST
from tests.governance_support import INVENTORY

REPO = Path(__file__).parent.parent
SECRET = "kr-SECRET-0a6c2e9d41"


def keyring_env(data_home: Path, backend: str = "keyrings.alt.file.PlaintextKeyring") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHON_KEYRING_BACKEND": backend, "XDG_DATA_HOME": str(data_home)}


def cli(env: dict[str, str], *args: str, stdin: str = "", config: Path | None = None) -> subprocess.CompletedProcess:
    prefix = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "discovery_router", *prefix, *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[Path]:
    """This process uses the same file keyring the subprocesses get through XDG_DATA_HOME."""
    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "python_keyring" / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    try:
        yield tmp_path
    finally:
        keyring.set_keyring(previous)


async def test_secret_set_then_keyring_reference_reaches_the_upstream(file_keyring: Path, caplog):
    env = keyring_env(file_keyring)
    stored = cli(env, "secret", "set", "inventory/api-key", stdin=SECRET + "\n")
    assert stored.returncode == 0, stored.stderr
    assert SECRET not in stored.stdout + stored.stderr
    assert "${keyring:inventory/api-key}" in stored.stdout
    assert cli(env, "secret", "set", "plain", stdin="another-secret-value").returncode == 0

    caplog.set_level(logging.DEBUG)
    config = parse_config(
        {
            "mcpServers": {
                "inv": {
                    "command": sys.executable,
                    "args": [INVENTORY, "stdio"],
                    "env": {
                        "PYTHONPATH": str(REPO),
                        "API_KEY": "${keyring:inventory/api-key}",
                        "OTHER": "x-${keyring:plain}",
                    },
                },
                "remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${keyring:plain}"}},
            }
        },
        environ={},
    )
    assert config.servers["inv"].env["OTHER"] == "x-another-secret-value"
    assert config.servers["remote"].headers["Authorization"] == "Bearer another-secret-value"
    assert config.redactor(f"key {SECRET}") == "key ***"
    router = Router(
        config.servers, replace(FAST, audit_log=str(file_keyring / "audit.jsonl")), redactor=config.redactor
    )
    async with router:
        await router.wait_ready()
        result = await router.call("inv/read_env", {"name": "API_KEY"})
        assert result.content[0].text == SECRET
        await router.call("inv/check_item", {"name": SECRET})
    assert SECRET not in caplog.text
    assert SECRET not in (file_keyring / "audit.jsonl").read_text()

    deleted = cli(env, "secret", "delete", "inventory/api-key")
    assert deleted.returncode == 0 and "deleted inventory/api-key" in deleted.stdout
    assert cli(env, "secret", "delete", "inventory/api-key").returncode == 1
    with pytest.raises(ConfigError) as missing:
        parse_config(
            {"mcpServers": {"inv": {"command": "x", "env": {"K": "${keyring:inventory/api-key}"}}}}, environ={}
        )
    assert missing.value.field == "env.K" and "secret set inventory/api-key" in str(missing.value)


def test_headless_linux_says_so_and_other_forms_keep_working(tmp_path: Path):
    env = keyring_env(tmp_path, backend="keyring.backends.fail.Keyring")
    refused = cli(env, "secret", "set", "token", stdin="whatever-value")
    assert refused.returncode == 1
    assert "no OS keyring backend is available here" in refused.stderr and "${VAR}" in refused.stderr
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "inv": {"command": "x", "env": {"K": "${keyring:token}"}},
                    "other": {"command": "y", "env": {"K": "${FROM_ENV}"}},
                }
            }
        )
    )
    listed = cli(env, "list", "--json", config=config)  # reads no secret at all
    assert listed.returncode == 0 and '"server": "inv"' in listed.stdout
    status = cli({**env, "FROM_ENV": "v"}, "status", config=config)
    assert status.returncode == 1
    assert "server 'inv': field 'env.K': no OS keyring backend is available here" in status.stderr
    config.write_text(json.dumps({"mcpServers": {"other": {"command": "y", "env": {"K": "${FROM_ENV}"}}}}))
    parsed = parse_config(json.loads(config.read_text()), environ={"FROM_ENV": "value-from-env"})
    assert parsed.servers["other"].env["K"] == "value-from-env"

"""The GraphQL-over-HTTP specification, checked by a suite nobody here wrote: the
`graphql-http` package's server audits (npm), run by Node against a live gateway."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Databases, Gateway, build_store, start_gateway, unavailable

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def node_suites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This folder's package.json installed (once per machine: npm's cache keeps it)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        unavailable("Node.js and npm are not installed (apt-get install nodejs npm)")
    folder = Path(os.environ.get("GATEWAY_TEST_NODE_DIR", tmp_path_factory.mktemp("node")))
    for name in ("package.json", "audit.mjs"):
        shutil.copy(HERE / name, folder / name)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent"],
        cwd=folder,
        check=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return folder


@pytest.fixture(scope="module")
def gateway(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = databases.new("sqlite")
    build_store(url, 0.02)
    gw, running = start_gateway(tmp_path_factory.mktemp("audit"), "sqlite", url)
    yield gw
    gw.client.close()
    running.stop()


def test_every_must_and_should_audit_passes(node_suites: Path, gateway: Gateway) -> None:
    printed = subprocess.run(
        ["node", "audit.mjs", f"{gateway.url}/graphql"],
        cwd=node_suites,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    results: list[dict[str, Any]] = json.loads(printed)
    assert len(results) > 50  # the suite ran
    failed = [r for r in results if r["status"] in ("error", "warn")]  # MUST, SHOULD
    assert failed == [], json.dumps(failed, indent=1)
    assert sum(r["name"].startswith("MUST") for r in results) >= 10

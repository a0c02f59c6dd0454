"""Trusted documents: a client sends a document's id instead of its text (GraphQL over
HTTP's documentId, Apollo's persistedQuery, over POST, GET and WebSocket), and a
gateway that runs only trusted documents refuses every other one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.gateway.test_ws_limits import opened, received

READ = "{ legalEntities { totalCount } }"
EVENTS = "subscription { businessEvents { cursor } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def trusted(
    gateways: Callable[..., Gateway], folder: Path, only: bool, apollo: bool = False
) -> Gateway:
    """A gateway with a manifest of the two documents above (in Apollo's form or GraphQL
    Codegen's)."""
    manifest = folder / "documents.json"
    documents = {sha(READ): READ, sha(EVENTS): EVENTS}
    if apollo:
        operations = [
            {"id": k, "name": "x", "type": "query", "body": v} for k, v in documents.items()
        ]
        manifest.write_text(
            json.dumps(
                {
                    "format": "apollo-persisted-query-manifest",
                    "version": 1,
                    "operations": operations,
                }
            )
        )
    else:
        manifest.write_text(json.dumps({f"sha256:{k}": v for k, v in documents.items()}))
    return gateways(trusted_documents=manifest, trusted_documents_only=only)


def post(gw: Gateway, body: dict[str, Any]) -> Any:
    return gw.client.post("/graphql", json=body, headers={"Authorization": f"Bearer {gw.reader}"})


@pytest.mark.parametrize("apollo", [False, True], ids=["codegen", "apollo"])
def test_only_trusted_documents_run(
    gateways: Callable[..., Gateway], tmp_path: Path, apollo: bool
) -> None:
    gw = trusted(gateways, tmp_path, only=True, apollo=apollo)
    count = {"data": {"legalEntities": {"totalCount": 3}}}
    assert post(gw, {"documentId": f"sha256:{sha(READ)}"}).json() == count
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha(READ)}}
    assert post(gw, {"extensions": persisted}).json() == count
    got = gw.client.get(
        "/graphql",
        params={"documentId": f"sha256:{sha(READ)}"},
        headers={"Authorization": f"Bearer {gw.reader}", "Accept": "application/json"},
    )
    assert got.json() == count
    assert post(gw, {"query": READ}).json() == count  # the trusted text itself

    other = post(gw, {"query": "{ legalEntities { nodes { name } } }"})
    assert other.status_code == 400
    (error,) = other.json()["errors"]
    assert error["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "limit": "GATEWAY_TRUSTED_DOCUMENTS_ONLY",
    }
    unknown = post(gw, {"documentId": "sha256:" + "0" * 64}).json()["errors"][0]
    assert unknown["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    with opened(gw, gw.reader) as ws:  # and over WebSocket
        received(ws, "connection_ack")
        ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { businessEvents { notice } }"},
                }
            )
        )
        refused = received(ws, "error")
        assert refused["payload"][0]["extensions"]["limit"] == "GATEWAY_TRUSTED_DOCUMENTS_ONLY"
        ws.send(
            json.dumps(
                {"id": "2", "type": "subscribe", "payload": {"documentId": f"sha256:{sha(EVENTS)}"}}
            )
        )
        ws.send(json.dumps({"type": "ping"}))
        received(ws, "pong")  # the trusted one runs: no error came first


def test_without_only_any_document_runs_and_ids_still_resolve(
    gateways: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = trusted(gateways, tmp_path, only=False)
    assert "errors" not in post(gw, {"query": "{ legalEntities { nodes { name } } }"}).json()
    assert post(gw, {"documentId": sha(READ)}).json()["data"]["legalEntities"]["totalCount"] == 3


def test_a_manifest_that_is_not_one_stops_the_start(tmp_path: Path) -> None:
    from gateway.http.trusted import TrustedDocuments

    (tmp_path / "bad.json").write_text('["not", "a", "manifest"]')
    with pytest.raises(ValueError, match="not a manifest"):
        TrustedDocuments(tmp_path / "bad.json", only=True)

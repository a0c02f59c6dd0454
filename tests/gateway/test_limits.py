"""The limits that keep the gateway up for everyone: the estimated cost of a query, the
request body's size, a time limit on reads, and a rate per caller. Each refusal is a
GraphQL error coded LIMIT_EXCEEDED that names the setting, on both read paths."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.conftest import Gateway
from tests.gateway.test_setup_kill import TableLock

NESTED = """query($first: Int!) { customersV3(company: "USMF", first: $first) {
  nodes { customerAccount salesOrders(first: $first) { nodes { salesOrderNumber } } } } }"""


def refused(body: dict[str, Any], limit: str) -> str:
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": limit}, error
    assert limit in error["message"]
    message: str = error["message"]
    return message


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_a_query_that_may_return_too_much_is_refused_before_it_runs(
    fast: bool, gateways: Callable[..., Gateway]
) -> None:
    gw = gateways(max_cost=10_000, fast_reads=fast)
    # 50 customers * (1 + 50 orders) = 2,550 objects at most: within the limit
    assert gw.data(NESTED, {"first": 50})["customersV3"]["nodes"]
    # 100 * (1 + 100) = 10,100: past it
    message = refused(gw.query(NESTED, {"first": 100}), "GATEWAY_MAX_COST")
    assert "10,100" in message and "10,000" in message
    # the limit is the query's, not each field's: two reads of 6,000 make 12,000
    two = """{ a: customersV3(company: "USMF", first: 6000) { nodes { customerAccount } }
               b: customersV3(company: "DEMF", first: 6000) { nodes { customerAccount } } }"""
    refused(gw.query(two), "GATEWAY_MAX_COST")


def test_a_body_past_the_limit_is_refused_unread(gateways: Callable[..., Gateway]) -> None:
    gw = gateways(max_body_bytes=4096)
    padding = " " * 5000
    query = "{ legalEntities { totalCount } }"
    declared = gw.client.post("/graphql", json={"query": query + padding})
    assert declared.status_code == 413
    refused(declared.json(), "GATEWAY_MAX_BODY_BYTES")

    def chunks() -> Iterator[bytes]:  # no length declared: counted as it arrives
        yield b'{"query": "' + query.encode()
        for _ in range(10):
            yield b" " * 1000
        yield b'"}'

    streamed = gw.client.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    refused(streamed.json(), "GATEWAY_MAX_BODY_BYTES")
    ok = gw.client.post("/graphql", json={"query": query}, headers=_reader(gw))
    assert ok.status_code == 200 and "errors" not in ok.json()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_a_read_past_the_time_limit_is_refused_and_the_gateway_goes_on(
    fast: bool, gateways: Callable[..., Gateway]
) -> None:
    gw = gateways("postgresql", operation_seconds=1.0, fast_reads=fast)
    lock = TableLock(gw.fno_url)  # another client holds the table: the read waits
    lock.take("custcustomerv3entity")
    try:
        started = time.monotonic()
        body = gw.query(NESTED, {"first": 5})
        took = time.monotonic() - started
    finally:
        lock.release()
    refused(body, "GATEWAY_OPERATION_SECONDS")
    assert 1.0 <= took < 5
    assert len(gw.data(NESTED, {"first": 5})["customersV3"]["nodes"]) == 5


def test_each_caller_has_its_own_rate(gateways: Callable[..., Gateway]) -> None:
    gw = gateways(rate_limit="5/minute")
    query = {"query": "{ legalEntities { totalCount } }"}
    first, second = _reader(gw), {"Authorization": f"Bearer {gw.token(sub='other')}"}
    answers = [gw.client.post("/graphql", json=query, headers=first) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert "5 per 1 minute" in refused(answers[-1].json(), "GATEWAY_RATE_LIMIT")
    assert gw.client.post("/graphql", json=query, headers=second).status_code == 200

    # callers without credentials share their address's rate
    anonymous = [gw.client.post("/graphql", json=query).status_code for _ in range(6)]
    assert anonymous[-1] == 429

    # concurrent requests are counted too
    more: list[int] = []
    third = {"Authorization": f"Bearer {gw.token(sub='third')}"}
    threads = [
        threading.Thread(
            target=lambda: more.append(
                httpx.post(f"{gw.url}/graphql", json=query, headers=third).status_code
            )
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(more) == [200] * 5 + [429] * 3


def test_a_rate_that_does_not_parse_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a rate like"):
        Settings(data_dir=tmp_path, rate_limit="lots")


def _reader(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.reader}"}


def test_depth_aliases_and_tokens_are_refused_naming_their_setting(
    gateways: Callable[..., Gateway],
) -> None:
    gw = gateways(max_depth=5, max_aliases=3, max_tokens=200)
    deep = '{ customersV3(company: "USMF") { nodes { salesOrders { nodes { customer { '
    deep += "salesOrders { nodes { salesOrderNumber } } } } } } } }"
    assert "5 levels" in refused(gw.query(deep), "GATEWAY_MAX_DEPTH")
    aliases = "{ " + " ".join(f"a{n}: __typename" for n in range(4)) + " }"
    assert "4 aliases, more than 3" in refused(gw.query(aliases), "GATEWAY_MAX_ALIASES")
    tokens = "{ " + " ".join("__typename" for _ in range(300)) + " }"
    assert "200 tokens" in refused(gw.query(tokens), "GATEWAY_MAX_TOKENS")

"""GraphQL over HTTP: methods, media types, status codes, and the offline playground."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gql import Client, gql
from gql.transport.httpx import HTTPXAsyncTransport
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from gateway.auth import Role
from tests.conftest import Databases, Gateway, build_store, start_gateway, unavailable
from tests.gateway.test_dualwrite import customer
from tests.test_writes import CREATE

GQL_RESPONSE = "application/graphql-response+json"
QUERY = "{ legalEntities { totalCount } }"


@pytest.fixture(scope="module")
def sqlite_gateway(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Transport behaviour does not depend on the store: one SQLite gateway serves it,
    open to anonymous reads so requests here carry no credentials unless a test says so."""
    url = databases.new("sqlite")
    build_store(url, 0.02)
    gw, running = start_gateway(
        tmp_path_factory.mktemp("http"), "sqlite", url, anonymous_reads=True
    )
    yield gw
    gw.client.close()
    running.stop()


def test_post_and_get(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.client
    post = client.post("/graphql", json={"query": QUERY})
    get = client.get("/graphql", params={"query": QUERY})
    assert post.status_code == get.status_code == 200
    assert post.json() == get.json() == {"data": {"legalEntities": {"totalCount": 3}}}
    assert post.headers["content-type"] == "application/json"


def test_graphql_response_media_type_and_status_codes(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.client
    headers = {"Accept": GQL_RESPONSE}
    ok = client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert ok.status_code == 200 and ok.headers["content-type"] == GQL_RESPONSE
    parse = client.post("/graphql", json={"query": "{ legalEntities {"}, headers=headers)
    assert parse.status_code == 400 and "data" not in parse.json()
    assert parse.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    invalid = client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    variables = client.post(
        "/graphql",
        json={
            "query": "query($n: Int!) { legalEntities(first: $n) { totalCount } }",
            "variables": {"n": "x"},
        },
        headers=headers,
    )
    assert variables.status_code == 400
    assert variables.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    legacy = client.post("/graphql", json={"query": "{ nope }"})
    assert legacy.status_code == 200


def test_malformed_requests(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.client
    assert (
        client.post(
            "/graphql", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/graphql", content=b"query", headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.post("/graphql", json=[{"query": QUERY}]).status_code == 400
    assert client.post("/graphql", json={"variables": {}}).status_code == 400
    assert (
        client.post("/graphql", json={"query": QUERY}, headers={"Accept": "text/csv"}).status_code
        == 406
    )
    mutation = client.get("/graphql", params={"query": "mutation { refreshCatalog { name } }"})
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"


def test_graphiql_is_served_from_the_gateway_alone(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.client
    page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "GraphiQL" in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/static/graphiql/") for s in sources)
    for source in sources:
        asset = client.get(source)
        assert (asset.status_code == 200 and len(asset.content) > 1000) or source.endswith(
            "start.js"
        )


async def test_a_standard_client_reads_through_the_gateway(sqlite_gateway: Gateway) -> None:
    transport = HTTPXAsyncTransport(url=f"{sqlite_gateway.url}/graphql")
    async with Client(transport=transport, fetch_schema_from_transport=True) as session:
        result = await session.execute(
            gql(
                'query { customersV3(company: "DEMF", first: 2) { nodes { customerAccount salesCurrencyCode } } }'
            )
        )
    nodes = result["customersV3"]["nodes"]
    assert [n["salesCurrencyCode"] for n in nodes] == ["EUR", "EUR"]


def test_graphiql_runs_a_subscription_in_a_browser(sqlite_gateway: Gateway) -> None:
    """Headless Chromium (Debian's `chromium`), driven by Playwright, opens the playground
    with no network beyond the gateway, runs a subscription over graphql-transport-ws
    with the Headers pane's token, and shows an event a write raised."""
    browser_path = shutil.which("chromium")
    if browser_path is None:
        unavailable("Chromium is not installed (apt-get install chromium)")
    gw = sqlite_gateway
    token = gw.token(Role.WRITER, sub="graphiql@contoso.com")
    subscription = (
        'subscription {\n  businessEvents(filter: {events: ["CustomerCreatedBusinessEvent"]})'
        " { events }\n}"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            outside: list[str] = []  # requests beyond the gateway (there must be none)
            page.on("request", lambda r: r.url.startswith(gw.url) or outside.append(r.url))
            page.goto(f"{gw.url}/graphql")
            page.wait_for_selector(".graphiql-container")
            assert "customersV3" in editor(page, ".graphiql-query-editor")  # the example
            editor(page, ".graphiql-query-editor", subscription)
            headers = json.dumps({"Authorization": f"Bearer {token}"})
            editor(page, ".graphiql-editor-tool .graphiql-editor.hidden", headers)  # Headers
            page.click(".graphiql-execute-button")
            for n in range(20):  # until the subscription is listening
                account = f"GQ-{n}"
                gw.data(CREATE, {"input": customer(account)}, token=token)
                try:
                    page.wait_for_function(
                        "a => document.querySelector('.result-window .CodeMirror')"
                        ".CodeMirror.getValue().includes(a)",
                        arg=account,
                        timeout=1000,
                    )
                    break
                except PlaywrightTimeout:
                    continue
            else:
                pytest.fail(f"no event reached GraphiQL: {editor(page, '.result-window')}")
        finally:
            browser.close()
    assert not outside, outside  # everything came from the gateway


def editor(page: Page, where: str, value: str | None = None) -> str:
    """The text of a GraphiQL editor (CodeMirror), after setting it to `value`."""
    text: str = page.evaluate(
        "([where, value]) => { const cm = document.querySelector(where + ' .CodeMirror')"
        ".CodeMirror; if (value !== null) cm.setValue(value); return cm.getValue(); }",
        [where, value],
    )
    return text


def test_cors_lets_in_loopback_pages_and_configured_origins_only(
    sqlite_gateway: Gateway, databases: Databases, tmp_path: Path
) -> None:
    client = sqlite_gateway.client
    preflight = {"Access-Control-Request-Method": "POST"}
    local = "http://localhost:5173"
    allowed = client.options(
        "/graphql",
        headers={**preflight, "Origin": local, "Access-Control-Request-Headers": "authorization"},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == local
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    # answered by the fast lane and by the generic path alike
    read = '{ customersV3(company: "DEMF", first: 1) { nodes { customerAccount } } }'
    for query in (read, QUERY):
        response = client.post("/graphql", json={"query": query}, headers={"Origin": local})
        assert response.headers["access-control-allow-origin"] == local, query

    # a GET's answer depends on the Origin, whether one was sent or not (shared caches)
    for origin in ({"Origin": local}, {}):
        got = client.get("/graphql", params={"query": read}, headers=origin)
        assert "origin" in got.headers.get("vary", "").lower(), origin

    foreign = "https://evil.example"
    refused = client.options("/graphql", headers={**preflight, "Origin": foreign})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    response = client.post("/graphql", json={"query": read}, headers={"Origin": foreign})
    assert "access-control-allow-origin" not in response.headers

    app = "https://app.contoso.com"
    gw, running = start_gateway(
        tmp_path, "sqlite", sqlite_gateway.fno_url, anonymous_reads=True, cors_origins=[app]
    )
    try:
        opened = gw.client.options("/graphql", headers={**preflight, "Origin": app})
        assert opened.headers["access-control-allow-origin"] == app
    finally:
        gw.client.close()
        running.stop()

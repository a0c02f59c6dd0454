"""Exercises the F&O OData peer over HTTP and prints what it answers.

Not a pytest test: a quick look at a fresh peer, run by hand when the peer or
odatapy changes (`.venv/bin/python -m tests.peers.odata_fno.check_peer`). It
exits non-zero if a check fails.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx

from tests.conftest import build_store
from tests.peers.odata_fno.peer import Peer, start

NS = "Microsoft.Dynamics.DataEntities"
failures: list[str] = []


def check(name: str, ok: bool, detail: Any = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail != "" else ""))
    if not ok:
        failures.append(name)


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def run(peer: Peer) -> None:
    auth = {"Authorization": "Bearer peer-token"}
    client = httpx.Client(base_url=peer.url, headers=auth, timeout=10)

    r = client.get("$metadata")
    root = ET.fromstring(r.content)
    types = root.findall(".//{http://docs.oasis-open.org/odata/ns/edm}EntityType")
    check("$metadata parses", r.status_code == 200 and len(types) == 8, r.headers["content-type"])

    r = client.get("CustomersV3(dataAreaId='usmf',CustomerAccount='US-000001')")
    check("key read", r.status_code == 200 and r.json()["CustomerAccount"] == "US-000001")
    etag = r.headers.get("ETag")
    check("key read ETag header", etag == r.json()["@odata.etag"], etag)

    r = client.get("CustomersV3", params={"$filter": f"OnHoldStatus eq {NS}.CustVendorBlocked'No'"})
    check(
        "filter on an F&O enum literal",
        r.status_code == 200 and bool(rows(r)) and all(c["OnHoldStatus"] == "No" for c in rows(r)),
        len(rows(r)),
    )
    r = client.get("CustomersV3", params={"$filter": "contains(OrganizationName,'a')"})
    check("contains()", r.status_code == 200 and all("a" in c["OrganizationName"] for c in rows(r)))

    accounts = ["US-000001", "US-000003", "US-000005"]
    chain = " or ".join(f"CustomerAccount eq '{a}'" for a in accounts)
    r = client.get("CustomersV3", params={"$filter": chain})
    check("or-chain", sorted(c["CustomerAccount"] for c in rows(r)) == accounts)
    r = client.get("CustomersV3", params={"$filter": f"CustomerAccount in ('{accounts[0]}')"})
    check("in operator", r.status_code == 200 and len(rows(r)) == 1, r.status_code)

    r = client.get(
        "CustomersV3",
        params={"$orderby": "CreditLimit desc,CustomerAccount", "$top": "3", "$count": "true"},
    )
    limits = [c["CreditLimit"] for c in rows(r)]
    check(
        "$orderby + $top + $count",
        len(limits) == 3 and limits == sorted(limits, reverse=True) and "@odata.count" in r.json(),
        f"count={r.json().get('@odata.count')} limits={limits}",
    )

    url: str | None = "SalesOrderLines?$select=InventoryLotId&cross-company=true"
    seen: list[str] = []
    pages = 0
    while url:
        r = client.get(url)
        seen += [line["InventoryLotId"] for line in rows(r)]
        url = r.json().get("@odata.nextLink")
        pages += 1
        if pages == 1:
            check("nextLink keeps custom options", url is not None and "cross-company=true" in url)
    count = client.get("SalesOrderLines/$count?cross-company=true").text
    check("paging to the end", len(seen) == len(set(seen)) == int(count), f"{pages} pages")

    usmf = rows(client.get("CustomersV3?$select=dataAreaId"))
    every = rows(client.get("CustomersV3?$select=dataAreaId&cross-company=true"))
    check("default company only", {c["dataAreaId"] for c in usmf} == {"usmf"}, len(usmf))
    check("cross-company=true", {c["dataAreaId"] for c in every} == {"usmf", "usrt", "demf"})
    r = client.get("CustomersV3(dataAreaId='usrt',CustomerAccount='RT-000001')")
    check("key read in another company", r.status_code == 200, r.status_code)

    r = client.get(
        "CustomersV3",
        params={"$top": "3", "$expand": "SalesOrders($select=SalesOrderNumber;$top=2)"},
    )
    orders = [c["SalesOrders"] for c in rows(r)]
    check(
        "$expand with nested $select/$top",
        all(len(o) <= 2 for o in orders) and any(orders),
        [[s["SalesOrderNumber"] for s in o] for o in orders],
    )
    r = client.get("CustomersV3", params={"$top": "3"})
    check("no inline links without $expand", all("SalesOrders" not in c for c in rows(r)))
    r = client.get(
        "SalesOrderLines",
        params={"$top": "1", "$expand": "SalesOrder($expand=Customer($select=OrganizationName))"},
    )
    line = rows(r)[0]
    check("nested $expand to-one", line["SalesOrder"]["Customer"]["OrganizationName"] != "")

    r = client.get("CustomersV3", params={"$filter": "SalesOrders/any(s:s/SalesOrderNumber ne '')"})
    with_orders = rows(r)
    r = client.get("CustomersV3", params={"$filter": "not SalesOrders/any()"})
    check(
        "lambda any()",
        len(with_orders) + len(rows(r)) == len(usmf) and bool(with_orders),
        f"{len(with_orders)} with orders, {len(rows(r))} without",
    )

    new = {
        "dataAreaId": "usmf",
        "CustomerAccount": "US-999999",
        "OrganizationName": "Peer Test",
        "PartyType": "Organization",
        "CustomerGroupId": "10",
        "CreditLimit": 100.5,
        "CreditLimitIsMandatory": "No",
        "SalesCurrencyCode": "USD",
        "OnHoldStatus": "Invoice",
    }
    r = client.post("CustomersV3", json=new)
    check("POST", r.status_code == 201, f"{r.status_code} ETag={r.headers.get('ETag')}")
    key = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-999999')"
    first = r.headers.get("ETag", "")
    r = client.get(
        "CustomersV3", params={"$filter": f"OnHoldStatus eq {NS}.CustVendorBlocked'Invoice'"}
    )
    check("a written enum filters", "US-999999" in [c["CustomerAccount"] for c in rows(r)])
    r = client.patch(key, json={"CreditLimit": 200}, headers={"If-Match": first})
    second = r.headers.get("ETag", "")
    check("PATCH with the current ETag", r.status_code == 204, f"{r.status_code} ETag={second}")
    r = client.patch(key, json={"CreditLimit": 300}, headers={"If-Match": first})
    check("PATCH with a stale ETag is 412", r.status_code == 412, r.text)
    r = client.patch(key, json={"CreditLimit": 300})
    check("PATCH without If-Match", r.status_code in (204, 428), r.status_code)
    r = client.patch(key, json={"Bogus": 1}, headers={"If-Match": "*"})
    check("unknown property is 400", r.status_code == 400, r.json()["error"]["message"])
    r = client.get(key)
    second = r.headers["ETag"]
    check("fields a write left out are null", r.json()["PrimaryContactEmail"] is None)

    r = client.post("CustomerGroups", json={"CustomerGroupId": "99", "Description": "Peer"})
    group = r.json()
    check(
        "POST without a company lands in usmf, with enum defaults",
        r.status_code == 201 and group["dataAreaId"] == "usmf",
        group,
    )
    order = "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='000001')"
    before = int(client.get(f"{order}/Lines/$count").text)
    line = {"InventoryLotId": "LOT-PEER", "SalesOrderNumber": "000001", "ItemNumber": "A0001"}
    client.post("SalesOrderLines", json=line)
    after = int(client.get(f"{order}/Lines/$count").text)
    check("a new row shows in navigation", after == before + 1, f"{before} -> {after}")
    r = client.patch(order, json={"RequestedShippingDate": None}, headers={"If-Match": "*"})
    r = client.get(order, params={"$select": "RequestedShippingDate"})
    check("null Edm.Date", r.json()["RequestedShippingDate"] is None)

    r = client.delete(key, headers={"If-Match": second})
    check("DELETE", r.status_code == 204, r.status_code)
    check("gone", client.get(key).status_code == 404)

    token_url = f"{peer.authority}/tenant-1/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": "gateway",
        "client_secret": "s3cret",
        "scope": "https://fno.example/.default",
    }
    r = httpx.post(token_url, data=form)
    token = r.json().get("access_token", "")
    check(
        "token endpoint", r.status_code == 200 and peer.tokens_issued == 1, r.json()["expires_in"]
    )
    r = httpx.get(peer.url + "LegalEntities", headers={"Authorization": f"Bearer {token}"})
    check("issued token works", r.status_code == 200)
    r = httpx.post(token_url, data={**form, "client_secret": "wrong"})
    check("wrong secret", r.status_code == 401 and r.json()["error"] == "invalid_client")
    r = httpx.get(peer.url + "LegalEntities")
    check("401 without a token", r.status_code == 401 and "message" in r.json()["error"])

    peer.fail_next(2, status=429, retry_after=3)
    statuses = [client.get("LegalEntities") for _ in range(3)]
    check(
        "fail_next",
        [s.status_code for s in statuses] == [429, 429, 200]
        and statuses[0].headers["Retry-After"] == "3",
    )
    check("requests are logged", peer.requests[-1] == ("GET", "/data/LegalEntities"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'fno.db'}"
        build_store(url, 0.02)
        began = time.perf_counter()
        with start(url, page_size=50) as peer:
            print(f"started in {time.perf_counter() - began:.3f}s at {peer.url}")
            run(peer)
    if failures:
        sys.exit(f"{len(failures)} failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()

"""Deterministic demo data. Scale 1 is 1,000 customers, 2,000 orders and about 10,000
order lines across USMF, USRT and DEMF; scale 100 is 100,000 customers and about a
million lines. The same scale always gives the same rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, MetaData, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.fno_demo.entities import (
    CUSTOMER,
    CUSTOMER_GROUP,
    DEMO_ENTITIES,
    LEGAL_ENTITY,
    RELEASED_PRODUCT,
    SALES_ORDER_HEADER,
    SALES_ORDER_LINE,
    VENDOR,
    VENDOR_GROUP,
)
from datasources.sql.bulk import bulk_insert
from datasources.sql.metadata import create_system_tables, dataarea, publish_entity
from datasources.sql.tables import entity_table
from gateway.kernel.catalog import EntityMetadata

Progress = Callable[[int], None]
CHUNK = 20_000


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    country: str
    currency: str
    language: str
    share: float
    prefix: str
    cities: tuple[tuple[str, str, str], ...]


US_CITIES = (
    ("Seattle", "WA", "98101"),
    ("Redmond", "WA", "98052"),
    ("Portland", "OR", "97201"),
    ("Chicago", "IL", "60601"),
    ("Dallas", "TX", "75201"),
    ("Atlanta", "GA", "30303"),
    ("Boston", "MA", "02108"),
    ("Denver", "CO", "80202"),
    ("Miami", "FL", "33101"),
    ("San Diego", "CA", "92101"),
    ("New York", "NY", "10001"),
    ("Phoenix", "AZ", "85004"),
)
DE_CITIES = (
    ("Berlin", "BE", "10115"),
    ("München", "BY", "80331"),
    ("Hamburg", "HH", "20095"),
    ("Frankfurt am Main", "HE", "60311"),
    ("Köln", "NW", "50667"),
    ("Stuttgart", "BW", "70173"),
    ("Düsseldorf", "NW", "40213"),
    ("Leipzig", "SN", "04109"),
)
COMPANIES = (
    Company(
        "usmf", "Contoso Entertainment System USA", "USA", "USD", "en-us", 0.5, "US", US_CITIES
    ),
    Company("usrt", "Contoso Retail USA", "USA", "USD", "en-us", 0.3, "RT", US_CITIES),
    Company(
        "demf", "Contoso Entertainment System Germany", "DEU", "EUR", "de", 0.2, "DE", DE_CITIES
    ),
)
CUSTOMER_GROUPS = (
    ("10", "Wholesale customers", "Net30"),
    ("20", "Major customers", "Net45"),
    ("30", "Retail customers", "Net10"),
    ("40", "Internet customers", "COD"),
    ("80", "Other customers", "Net30"),
    ("90", "Intercompany customers", "Net60"),
)
VENDOR_GROUPS = (
    ("10", "Parts vendors", "Net30"),
    ("20", "Service vendors", "Net45"),
    ("30", "Freight vendors", "Net10"),
    ("50", "Intercompany vendors", "Net60"),
)
NAMES = (
    "Contoso",
    "Fabrikam",
    "Adventure Works",
    "Northwind",
    "Tailspin",
    "Wingtip",
    "Litware",
    "Proseware",
    "Alpine Ski House",
    "Coho Winery",
    "Lamna",
    "Fourth Coffee",
    "Trey Research",
    "Woodgrove",
    "Humongous Insurance",
    "Margie's Travel",
    "Relecloud",
    "Blue Yonder",
    "Lucerne Publishing",
    "Southridge Video",
    "Wide World Importers",
    "A. Datum",
    "VanArsdel",
    "Munson's Pickles",
    "Best For You Organics",
    "Nod Publishers",
    "Bellows",
    "Wingtip Toys",
)
SUFFIXES = (
    "Retail",
    "Wholesale",
    "Supplies",
    "Group",
    "Partners",
    "Stores",
    "Distribution",
    "Foods",
    "Electronics",
    "Outfitters",
    "Trading",
    "Holdings",
)
STREETS = (
    "Main St",
    "Oak Ave",
    "Pine St",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Lake View Rd",
    "Market St",
    "Hauptstraße",
    "Bahnhofstraße",
)
PRODUCTS = (
    ("Car Audio System", "A", Decimal("499.00")),
    ("Projector", "D", Decimal("1249.00")),
    ("Speaker Cable", "M", Decimal("12.50")),
    ("Surround Sound Receiver", "D", Decimal("899.00")),
    ("Home Theater System", "D", Decimal("2499.00")),
    ("Television 47in", "T", Decimal("1599.00")),
    ("Mid-Range Speaker", "S", Decimal("189.00")),
    ("High End Speaker", "S", Decimal("1190.00")),
    ("Subwoofer", "S", Decimal("349.00")),
    ("Installation service", "V", Decimal("150.00")),
)
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CENT = Decimal("0.01")


def counts(scale: float) -> dict[str, int]:
    customers = max(3, round(1000 * scale))
    return {
        "customers": customers,
        "orders": customers * 2,
        "vendors": max(3, round(100 * scale)),
        "products": 60 if scale < 1 else 200,
    }


async def build_demo_store(
    engine: AsyncEngine, scale: float = 1.0, progress: Progress | None = None
) -> int:
    """Create the demo F&O store (tables, metadata, rows) in an empty database.

    Returns the number of rows written. `progress` is called with row counts as
    chunks land.
    """
    report = progress or (lambda _n: None)
    dialect = engine.dialect.name
    tables = MetaData()
    for entity in DEMO_ENTITIES:
        entity_table(entity, tables, dialect)
    _index_relations(tables)
    async with engine.begin() as conn:
        await create_system_tables(conn)
        await conn.run_sync(tables.create_all)
        for entity in DEMO_ENTITIES:
            await publish_entity(conn, entity)
        await conn.execute(insert(dataarea), [{"id": c.id, "name": c.name} for c in COMPANIES])

    written = 0
    buffers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pending: asyncio.Task[int] | None = None
    for entity, row in _Generator(scale).rows():
        row["recversion"] = 1
        buffer = buffers[entity.table]
        buffer.append(row)
        if len(buffer) >= CHUNK:
            # write this chunk while the next one is generated
            if pending is not None:
                written += await pending
                report(CHUNK)
            pending = asyncio.create_task(_write(engine, tables.tables[entity.table], buffer))
            buffers[entity.table] = []
    if pending is not None:
        written += await pending
        report(CHUNK)
    for table, buffer in buffers.items():
        if buffer:
            written += await _write(engine, tables.tables[table], buffer)
            report(len(buffer))
    async with engine.begin() as conn:  # planner statistics for the fresh tables
        await conn.exec_driver_sql("ANALYZE")
    return written


def expected_rows(scale: float) -> int:
    """About how many rows `build_demo_store` writes: for sizing a progress bar."""
    n = counts(scale)
    return 3 + 6 * 3 + 4 * 3 + n["vendors"] + n["products"] * 3 + n["customers"] + n["orders"] * 6


def _index_relations(tables: MetaData) -> None:
    """Index the columns relations look rows up by, as F&O indexes its foreign keys."""
    by_name = {e.name: e for e in DEMO_ENTITIES}
    seen: set[tuple[str, ...]] = set()
    for entity in DEMO_ENTITIES:
        for relation in entity.relations:
            target = by_name[relation.target]
            columns = tuple(target.field(t).column for _, t in relation.constraints)
            key = tuple(f.column for f in target.key)
            if key[: len(columns)] == columns or (target.table, *columns) in seen:
                continue
            seen.add((target.table, *columns))
            table = tables.tables[target.table]
            Index(f"ix_{target.table}_{len(seen)}", *(table.c[c] for c in columns))


async def _write(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> int:
    async with engine.begin() as conn:
        return await bulk_insert(conn, table, rows)


class _Generator:
    def __init__(self, scale: float) -> None:
        self.n = counts(scale)
        self.rng = random.Random(20_26_11)
        self.customers: dict[str, list[str]] = {c.id: [] for c in COMPANIES}
        self.products: dict[str, list[tuple[str, str, Decimal]]] = {c.id: [] for c in COMPANIES}

    def rows(self) -> Iterator[tuple[EntityMetadata, dict[str, Any]]]:
        """Every row of the store, each with its entity, in an order that keeps references valid."""
        yield from ((LEGAL_ENTITY, row) for row in self.legal_entities())
        yield from ((CUSTOMER_GROUP, row) for row in self.customer_groups())
        yield from ((VENDOR_GROUP, row) for row in self.vendor_groups())
        yield from ((VENDOR, row) for row in self.vendors())
        yield from ((RELEASED_PRODUCT, row) for row in self.released_products())
        yield from ((CUSTOMER, row) for row in self.customers_())
        yield from self.orders_and_lines()

    def _spread(self, total: int) -> Iterator[tuple[Company, int]]:
        """Share `total` rows out among the companies, numbering from 1 in each."""
        numbers = dict.fromkeys((c.id for c in COMPANIES), 0)
        for i in range(total):
            company = _company_at(i)
            numbers[company.id] += 1
            yield company, numbers[company.id]

    def legal_entities(self) -> Iterator[dict[str, Any]]:
        for c in COMPANIES:
            yield {
                "legalentityid": c.id.upper(),
                "name": c.name,
                "addresscountryregionid": c.country,
                "addresscity": c.cities[0][0],
                "accountingcurrency": c.currency,
                "languageid": c.language,
            }

    def customer_groups(self) -> Iterator[dict[str, Any]]:
        for c in COMPANIES:
            for group, description, terms in CUSTOMER_GROUPS:
                yield {
                    "dataareaid": c.id,
                    "customergroupid": group,
                    "description": description,
                    "paymenttermid": terms,
                    "issalestaxincludedinprice": int(group == "30"),
                }

    def vendor_groups(self) -> Iterator[dict[str, Any]]:
        for c in COMPANIES:
            for group, description, terms in VENDOR_GROUPS:
                yield {
                    "dataareaid": c.id,
                    "vendorgroupid": group,
                    "description": description,
                    "defaultpaymenttermname": terms,
                }

    def _name(self) -> str:
        return f"{self.rng.choice(NAMES)} {self.rng.choice(SUFFIXES)}"

    def vendors(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for company, n in self._spread(self.n["vendors"]):
            city = rng.choice(company.cities)
            name = self._name()
            yield {
                "dataareaid": company.id,
                "vendoraccountnumber": f"{company.prefix}-V{n:05d}",
                "vendororganizationname": name,
                "vendorgroupid": rng.choice(VENDOR_GROUPS)[0],
                "currencycode": company.currency,
                "onholdstatus": 0 if rng.random() < 0.9 else rng.choice((1, 2, 3)),
                "addresscity": city[0],
                "addresscountryregionid": company.country,
                "primaryemailaddress": _email(name, n),
            }

    def released_products(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for c in COMPANIES:
            for n in range(1, self.n["products"] + 1):
                base, letter, price = PRODUCTS[(n - 1) % len(PRODUCTS)]
                series = (n - 1) // len(PRODUCTS) + 1
                item = f"{letter}{n:04d}"
                sales_price = (price * Decimal(rng.choice((90, 100, 100, 110))) / 100).quantize(
                    Decimal("0.01")
                )
                self.products[c.id].append((item, f"{base} {series}", sales_price))
                yield {
                    "dataareaid": c.id,
                    "itemnumber": item,
                    "productname": f"{base} {series}",
                    "searchname": f"{base.upper()}{series}",
                    "producttype": 1 if letter == "V" else 0,
                    "itemmodelgroupid": "STD" if letter != "V" else "SVC",
                    "salesunitsymbol": "ea" if letter != "V" else "hr",
                    "salesprice": sales_price,
                }

    def customers_(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for company, n in self._spread(self.n["customers"]):
            account = f"{company.prefix}-{n:06d}"
            self.customers[company.id].append(account)
            name = self._name()
            person = rng.random() < 0.1
            delivery = rng.choice(company.cities)
            invoice = delivery if rng.random() < 0.8 else rng.choice(company.cities)
            street = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
            yield {
                "dataareaid": company.id,
                "customeraccount": account,
                "organizationname": name,
                "partytype": 1 if person else 2,
                "customergroupid": rng.choice(CUSTOMER_GROUPS)[0],
                "creditlimit": Decimal(rng.choice((0, 5000, 10000, 25000, 50000, 100000, 250000))),
                "creditlimitismandatory": int(rng.random() < 0.3),
                "salescurrencycode": company.currency,
                "onholdstatus": 0 if rng.random() < 0.92 else rng.choice((1, 2, 3)),
                "paymentterms": rng.choice(CUSTOMER_GROUPS)[2],
                "languageid": company.language,
                "deliveryaddressstreet": street,
                "deliveryaddresscity": delivery[0],
                "deliveryaddresszipcode": delivery[2],
                "deliveryaddressstate": delivery[1],
                "deliveryaddresscountryregionid": company.country,
                "invoiceaddressstreet": street if invoice == delivery else f"PO Box {n}",
                "invoiceaddresscity": invoice[0],
                "invoiceaddresszipcode": invoice[2],
                "invoiceaddressstate": invoice[1],
                "invoiceaddresscountryregionid": company.country,
                "primarycontactemail": _email(name, n) if rng.random() < 0.95 else None,
                "primarycontactphone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
                if rng.random() < 0.9
                else None,
                "createddatetime": EPOCH + dt.timedelta(minutes=rng.randint(0, 60 * 24 * 900)),
            }

    def orders_and_lines(self) -> Iterator[tuple[EntityMetadata, dict[str, Any]]]:
        rng = random.Random(7_000 + self.n["orders"])
        draw = rng.random
        lot = 0
        quantities = (1, 1, 2, 3, 5, 10, 20)
        for company, n in self._spread(self.n["orders"]):
            customers = self.customers[company.id]
            products = self.products[company.id]
            customer = customers[int(draw() * len(customers))]
            order = f"{n:06d}"
            created = EPOCH + dt.timedelta(minutes=int(draw() * 60 * 24 * 900))
            ship = (created + dt.timedelta(days=1 + int(draw() * 30))).date()
            roll = draw()
            status = 1 if roll < 0.3 else 2 if roll < 0.5 else 3 if roll < 0.95 else 4
            city = company.cities[int(draw() * len(company.cities))]
            yield (
                SALES_ORDER_HEADER,
                {
                    "dataareaid": company.id,
                    "salesordernumber": order,
                    "orderingcustomeraccountnumber": customer,
                    "invoicecustomeraccountnumber": customer,
                    "salesordername": f"Order {order}",
                    "currencycode": company.currency,
                    "salesorderstatus": status,
                    "customerrequisitionnumber": f"PO-{10000 + int(draw() * 90000)}"
                    if draw() < 0.4
                    else None,
                    "requestedshippingdate": ship,
                    "ordercreationdatetime": created,
                    "deliveryaddresscity": city[0],
                    "deliveryaddresscountryregionid": company.country,
                },
            )
            for line in range(1, 2 + int(draw() * 9)):
                lot += 1
                item, product, price = products[int(draw() * len(products))]
                quantity = Decimal(quantities[int(draw() * len(quantities))])
                yield (
                    SALES_ORDER_LINE,
                    {
                        "dataareaid": company.id,
                        "inventorylotid": f"LOT{lot:09d}",
                        "salesordernumber": order,
                        "linenumber": Decimal(line),
                        "itemnumber": item,
                        "linedescription": product,
                        "orderedsalesquantity": quantity,
                        "salesunitsymbol": "ea",
                        "salesprice": price,
                        "lineamount": (price * quantity).quantize(CENT),
                        "requestedshippingdate": ship,
                    },
                )


def _company_at(i: int) -> Company:
    """Companies take turns in proportion to their share (5 : 3 : 2)."""
    slot = i % 10
    return COMPANIES[0] if slot < 5 else COMPANIES[1] if slot < 8 else COMPANIES[2]


def _email(name: str, n: int) -> str:
    local = "".join(ch for ch in name.lower() if ch.isalnum())[:20]
    return f"contact{n}@{local}.example.com"

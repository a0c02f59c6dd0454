"""Map definitions: stored and read back unchanged, lookups (one table, or several
for a polymorphic lookup) checked against what the Dataverse store publishes."""

from __future__ import annotations

import copy

from datasources.dataverse.tables import NATIVE_TABLES
from datasources.fno_demo.entities import DEMO_ENTITIES
from gateway.kernel.dual_write_maps import OUT_OF_THE_BOX_MAPS
from gateway.kernel.dualwrite import check_map, map_to_dict, parse_map

TABLES = {t.name: t for t in NATIVE_TABLES}
FNO = {e.name: e for e in DEMO_ENTITIES}
ORDERS = next(m for m in OUT_OF_THE_BOX_MAPS if m["dataverse_table"] == "salesorder")


def test_every_out_of_the_box_map_reads_back_as_written_and_passes() -> None:
    for data in OUT_OF_THE_BOX_MAPS:
        m = parse_map(data)
        assert parse_map(map_to_dict(m)) == m
        assert check_map(m, FNO[m.fno_entity], TABLES[m.dataverse_table], TABLES) == []


def test_a_polymorphic_lookup_tries_each_table_and_each_is_checked() -> None:
    m = parse_map(ORDERS)
    [customer] = [f for f in m.fields if f.lookups]
    assert [lk.table for lk in customer.lookups] == ["account", "contact"]
    assert map_to_dict(m)["fields"][m.fields.index(customer)]["lookup"][1]["by"] == (
        "msdyn_contactpersonid"
    )
    broken = copy.deepcopy(ORDERS)
    field = next(f for f in broken["fields"] if f.get("lookup"))
    field["lookup"][1]["by"] = "nosuchcolumn"
    problems = check_map(parse_map(broken), FNO["SalesOrderHeaderV2"], TABLES["salesorder"], TABLES)
    assert [p.code for p in problems] == ["LOOKUP_INVALID"]
    assert "contact.nosuchcolumn" in problems[0].message

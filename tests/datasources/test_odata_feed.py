"""How the change feed names rows: a deleted row comes back as an entity id in one of
several forms, and must be known as the same row its last-seen image was kept under."""

from __future__ import annotations

import pytest

from datasources.dataverse.tables import ACCOUNT
from datasources.fno_demo.entities import DEMO_ENTITIES
from datasources.odata.tracking import _key_text, _parse_id, _row_key, _same

CUSTOMER = next(e for e in DEMO_ENTITIES if e.name == "CustomerV3")
ROW_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


@pytest.mark.parametrize(
    "entity_id",
    [
        f"https://contoso.crm.dynamics.com/api/data/v9.2/accounts({ROW_ID})",
        f"accounts(accountid={ROW_ID})",
        ROW_ID,  # Dataverse's OData 4.0 deleted-entity form
    ],
)
def test_a_deleted_rows_id_names_the_row_it_was(entity_id: str) -> None:
    seen = _row_key(ACCOUNT, {"accountid": ROW_ID, "name": "Fabrikam"})
    assert _key_text(ACCOUNT, _parse_id(ACCOUNT, entity_id)) == seen


def test_composite_keys_with_quotes_and_commas() -> None:
    entity_id = "http://host/data/CustomersV3(dataAreaId='usmf',CustomerAccount='O''Brien, Ltd')"
    assert _parse_id(CUSTOMER, entity_id) == {
        "dataAreaId": "usmf",
        "CustomerAccount": "O'Brien, Ltd",
    }
    row = {"dataAreaId": "usmf", "CustomerAccount": "O'Brien, Ltd", "CreditLimit": 5}
    assert _key_text(CUSTOMER, _parse_id(CUSTOMER, entity_id)) == _row_key(CUSTOMER, row)


def test_a_row_is_as_last_seen_by_its_etag_or_else_its_values() -> None:
    before = {"@odata.etag": 'W/"7"', "name": "A"}
    assert _same(before, {"@odata.etag": 'W/"7"', "name": "A"})
    assert not _same(before, {"@odata.etag": 'W/"8"', "name": "A"})
    assert _same({"name": "A", "@odata.id": "x"}, {"name": "A"})
    assert not _same({"name": "A"}, {"name": "B"})

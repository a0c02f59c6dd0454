"""A map that cannot carry on goes to Error, says why, and loses nothing: changes
queue for it, resuming replays them, running again starts over."""

from __future__ import annotations

from collections.abc import Callable

from gateway.auth import Role
from tests.conftest import Gateway, run_sql
from tests.gateway.test_change_tracking import accounts, activity
from tests.gateway.test_dualwrite import CUSTOMER, CUSTOMERS, customer, link, wait_for
from tests.gateway.test_setup import admin

REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_accounts BEFORE INSERT ON account "
        "BEGIN SELECT RAISE(ABORT, 'no new accounts today'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_accounts() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no new accounts today'; END $$",
        "CREATE TRIGGER refuse_accounts BEFORE INSERT ON account "
        "FOR EACH ROW EXECUTE FUNCTION refuse_accounts()",
    ],
}
STATE = "{ dualWriteMaps { name state availableActions queued } }"


def customers_map(gw: Gateway) -> dict[str, object]:
    maps = gw.data(STATE)["dualWriteMaps"]
    found: dict[str, object] = next(m for m in maps if m["name"] == CUSTOMERS)
    return found


def run(gw: Gateway) -> None:
    gw.data(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
        "{ name } }",
        token=admin(gw),
    )


def test_a_map_whose_initial_sync_keeps_failing_goes_to_error(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = link(control_plane(job_tries=2))
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    gw.data(CUSTOMER, {"input": customer("DW-E1")}, token=writer)
    dataverse = gw.runtime.linked.url
    assert dataverse is not None

    # the Dataverse store refuses every new account: every try of the copy fails
    run_sql(dataverse, *REFUSE[gw.backend])
    run(gw)
    failed = wait_for(lambda: (m := customers_map(gw))["state"] == "ERROR" and m)
    assert failed["availableActions"] == ["RESUME", "RUN", "STOP"]
    [reason] = activity(gw, "ERROR")
    assert reason.startswith("initial sync failed 2 times; the last time: ")
    assert "no new accounts today" in reason

    # while in error, rows written directly to F&O wait for it
    run_sql(
        gw.fno_url,
        "UPDATE custcustomerv3entity SET creditlimit = 2500 WHERE customeraccount = 'DW-E1'",
    )
    wait_for(lambda: customers_map(gw)["queued"] == 1)

    # fixed, and run again: it starts over, copies everything, and runs
    run_sql(
        dataverse,
        "DROP TRIGGER refuse_accounts" + (" ON account" if gw.backend == "postgresql" else ""),
    )
    run(gw)
    wait_for(lambda: customers_map(gw)["state"] == "RUNNING")
    assert customers_map(gw)["queued"] == 0
    assert accounts(gw, "DW-E1")[0]["creditlimit"].startswith("2500")

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.table import Table

ID = "2026-12-05T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("Partial indexes for the worker's sweeps, so each reads what is due, not every row it ever "
               "wrote: orders_unsettled (the order sweep's ended orders still to settle, every 30 s: a pending order is not in it) and "
               "webhook_deliveries_due (the pending deliveries, every 0.5 s; delivered and failed rows keep a "
               "past next_attempt_at); orders_open (a partner's pending and claimed orders, oldest first: what its "
               "claim takes, and what a disabled partner leaves waiting, read before every claim while one is "
               "disabled and at every sweep); orders_by_participant (participant_id, id) for orders.participant_id, "
               "so a page of a participant's orders is read in its order; SQLite and Postgres alike")


class RawTable(Table):
    pass


async def _due_indexes() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS orders_unsettled ON orders (program_id, status) "
        "WHERE settled_at IS NULL AND status IN ('fulfilled', 'failed', 'cancelled')")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
        "WHERE status = 'pending'")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS orders_open ON orders (program_id, partner_id, created_at, id) "
        "WHERE status IN ('pending', 'claimed')")
    await RawTable.raw("CREATE INDEX IF NOT EXISTS orders_by_participant ON orders (participant_id, id)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="fulfillment", description=DESCRIPTION)
    manager.alter_column(table_class_name="Order", tablename="orders", column_name="participant_id",
                         db_column_name="participant_id", params={"index": False}, old_params={"index": True},
                         column_class=Varchar, old_column_class=Varchar, schema=None)
    manager.add_raw(_due_indexes)
    return manager

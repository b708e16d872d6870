from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T06:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("ledger_entries_redemptions: a program's redemption entries by time, so the order sweep's look "
               "for paid pool orders with no order row (fulfillment/pooled_orders.py mend) reads the last days "
               "only, not the program's whole ledger (a partial index; SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _redemptions_index() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_redemptions ON ledger_entries (program_id, created_at) "
        "WHERE kind = 'redemption'")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    manager.add_raw(_redemptions_index)
    return manager

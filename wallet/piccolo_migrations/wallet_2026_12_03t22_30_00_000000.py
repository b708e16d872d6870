from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T22:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("ledger_entries_holds: a program's hold entries by time, so the order sweep's look for held "
               "partner orders with no order row (fulfillment/partner_orders.py mend) reads the last days only, "
               "not the program's whole ledger (a partial index; SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _holds_index() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_holds ON ledger_entries (program_id, created_at) "
        "WHERE kind = 'hold'")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    manager.add_raw(_holds_index)
    return manager

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T21:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("pool_codes_free: the unused codes of an item in the order they are handed out, so taking one "
               "reads one index entry instead of sorting every unused code of the item (a partial index; "
               "SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _free_codes_index() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS pool_codes_free ON pool_codes (item_id, created_at, id) WHERE order_id IS NULL")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="fulfillment", description=DESCRIPTION)
    manager.add_raw(_free_codes_index)
    return manager

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T22:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("orders_tax_year: a participant's orders by program and moment, with their status and face value, "
               "so the year's tax total every redemption reads (fulfillment/taxes.py) is answered from the index "
               "alone instead of one table read per order of the participant (SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _tax_year_index() -> None:
    await RawTable.raw("CREATE INDEX IF NOT EXISTS orders_tax_year "
                       "ON orders (participant_id, program_id, created_at, status, face_value)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="fulfillment", description=DESCRIPTION)
    manager.add_raw(_tax_year_index)
    return manager

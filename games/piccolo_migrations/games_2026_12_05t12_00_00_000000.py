from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.table import Table

ID = "2026-12-05T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("spins_item_prizes: a program's item-prize spins by time, so the spin sweep's look for prizes "
               "with no order (games/spins.py complete_unrecorded) reads the last days' item prizes only, not "
               "every spin of the program (a partial index; SQLite and Postgres alike); no index of "
               "spins.program_id or spins.pair_id, which nothing else reads by and every spin wrote; "
               "spins_by_participant (participant_id, id) for spins.participant_id, so a page of a participant's "
               "history is read in its order, not sorted from all their spins")


class RawTable(Table):
    pass


async def _item_prizes_index() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS spins_item_prizes ON spins (program_id, created_at) WHERE order_id IS NOT NULL")
    await RawTable.raw("CREATE INDEX IF NOT EXISTS spins_by_participant ON spins (participant_id, id)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="games", description=DESCRIPTION)
    for column in ("program_id", "pair_id", "participant_id"):
        manager.alter_column(table_class_name="Spin", tablename="spins", column_name=column, db_column_name=column,
                             params={"index": False}, old_params={"index": True}, column_class=Varchar,
                             old_column_class=Varchar, schema=None)
    manager.add_raw(_item_prizes_index)
    return manager

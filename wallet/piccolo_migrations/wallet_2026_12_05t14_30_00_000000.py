from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.table import Table

ID = "2026-12-05T14:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("ledger_entries_participant_seq (participant_id, seq): a participant's entries by their place "
               "in the chain, so a replay of their lots from the expiry sweep's checkpoint "
               "(programs/expiry.py entries_after: a wallet read's `expiring`, the sweep) reads the entries "
               "after it, not every entry they ever had; no index of chain_checkpoints.program_id "
               "(chain_checkpoints_latest leads with it) (SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _participant_seq() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_participant_seq ON ledger_entries (participant_id, seq)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    manager.alter_column(table_class_name="Checkpoint", tablename="chain_checkpoints", column_name="program_id",
                         db_column_name="program_id", params={"index": False}, old_params={"index": True},
                         column_class=Varchar, old_column_class=Varchar, schema=None)
    manager.add_raw(_participant_seq)
    return manager

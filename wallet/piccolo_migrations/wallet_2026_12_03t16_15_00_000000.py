from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T16:15:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("ledger_entries_unlinked: the programs with ledger rows waiting for their link, in one read of "
               "a partial index that holds only those rows (a running projector's relink pass, "
               "wallet/chain.py unlinked_programs; SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _unlinked_index() -> None:
    # seq as well, though always null here: SQLite then reads the query from this index
    # alone, and without it chose to scan the whole (program_id, seq) index instead.
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_unlinked ON ledger_entries (program_id, seq) WHERE seq IS NULL")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    manager.add_raw(_unlinked_index)
    return manager

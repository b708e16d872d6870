from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T07:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "A unique index on ledger_entries (program_id, seq) (Piccolo runs raw SQL before new columns, hence apart)"


class RawTable(Table):
    pass


async def _chain_index():
    # One program's chain in seq order (audit), its unlinked rows (seq IS NULL), and no two
    # rows of a program at the same seq: a fork cannot be written. NULLs never collide.
    await RawTable.raw(
        "CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_program_seq ON ledger_entries (program_id, seq)"
    )


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="wallet", description=DESCRIPTION
    )
    manager.add_raw(_chain_index)
    return manager

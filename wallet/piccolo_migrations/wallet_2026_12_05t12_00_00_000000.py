from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.table import Table

ID = "2026-12-05T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("The ledger's indexes fitted to what reads them: ledger_entries_spins and "
               "ledger_entries_substitutes, so the spin sweep (games/spins.py complete_unrecorded, every 30 s) "
               "reads the last days' spins and an order's substitute only, not the program's whole ledger; "
               "ledger_entries_voids and ledger_entries_redemption_refs, an order's void or capture by its "
               "reference (the order sweeps: fulfillment/pooled_orders.py mend, fulfillment/orders.py "
               "_ended_in_ledger); chain_checkpoints_latest, a program's last checkpoint without reading them all; "
               "no index of ledger_entries.program_id (the unique (program_id, seq) index leads with it), "
               "ledger_postings.transaction_id or ledger_postings.account (nothing reads by them), each one "
               "more write of every row the projector lands (SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _sweep_indexes() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_spins ON ledger_entries (program_id, created_at) "
        "WHERE kind = 'spin'")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_substitutes ON ledger_entries (program_id, reference) "
        "WHERE kind = 'prize_substitute'")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_voids ON ledger_entries (program_id, reference) "
        "WHERE kind = 'redemption_void'")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS ledger_entries_redemption_refs ON ledger_entries (program_id, reference) "
        "WHERE kind = 'redemption'")
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS chain_checkpoints_latest ON chain_checkpoints (program_id, last_seq)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    for class_name, tablename, column in (("LedgerEntry", "ledger_entries", "program_id"),
                                          ("LedgerPosting", "ledger_postings", "transaction_id"),
                                          ("LedgerPosting", "ledger_postings", "account")):
        manager.alter_column(table_class_name=class_name, tablename=tablename, column_name=column,
                             db_column_name=column, params={"index": False}, old_params={"index": True},
                             column_class=Varchar, old_column_class=Varchar, schema=None)
    manager.add_raw(_sweep_indexes)
    return manager

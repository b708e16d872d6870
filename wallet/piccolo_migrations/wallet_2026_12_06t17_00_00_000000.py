from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.table import Table

ID = "2026-12-06T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("No index of ledger_entries.participant_id alone: a participant's history reads "
               "ledger_entries_participant_seq (participant_id, seq), their unlinked entries then the chain's "
               "(wallet/ledger.py). Once a program has a history, every entry written dirtied a page of each index "
               "keyed by participant, which the journal projector's commit writes: one fewer cut its SQL an order "
               "by about a seventh on a database of 120,000 orders (SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="wallet", description=DESCRIPTION)
    manager.alter_column(table_class_name="LedgerEntry", tablename="ledger_entries", column_name="participant_id",
                         db_column_name="participant_id", params={"index": False}, old_params={"index": True},
                         column_class=Varchar, old_column_class=Varchar, schema=None)
    return manager

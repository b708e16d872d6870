from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "The hash chain: ledger_entries.seq and .link, and chain_heads"


def _params(default, null, unique=False, length=None):
    params = {
        "default": default,
        "null": null,
        "primary_key": False,
        "unique": unique,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    if length is not None:
        params["length"] = length
    return params


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="wallet", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="LedgerEntry",
        tablename="ledger_entries",
        column_name="seq",
        db_column_name="seq",
        column_class_name="BigInt",
        column_class=BigInt,
        params=_params(None, True),
        schema=None,
    )

    manager.add_column(
        table_class_name="LedgerEntry",
        tablename="ledger_entries",
        column_name="link",
        db_column_name="link",
        column_class_name="Varchar",
        column_class=Varchar,
        params=_params(None, True, length=64),
        schema=None,
    )

    manager.add_table(
        class_name="ChainHead",
        tablename="chain_heads",
        schema=None,
        columns=None,
    )

    for name, column_class, params in (
        ("program_id", Varchar, _params("", False, unique=True, length=40)),
        ("seq", BigInt, _params(0, False)),
        ("link", Varchar, _params("", False, length=64)),
        ("stream_id", Varchar, _params("", False, length=40)),
    ):
        manager.add_column(
            table_class_name="ChainHead",
            tablename="chain_heads",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )

    return manager

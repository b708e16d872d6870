from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T06:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "programs.claim_window_days: claims for sales older than this are refused"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="programs", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Program",
        tablename="programs",
        column_name="claim_window_days",
        db_column_name="claim_window_days",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager

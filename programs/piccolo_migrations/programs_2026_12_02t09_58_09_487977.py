from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T09:58:09:487977"
VERSION = "1.38.0"
DESCRIPTION = "programs.publish_checkpoints: whether the signed ledger checkpoints are served publicly"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="programs", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Program",
        tablename="programs",
        column_name="publish_checkpoints",
        db_column_name="publish_checkpoints",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": False,
            "null": False,
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

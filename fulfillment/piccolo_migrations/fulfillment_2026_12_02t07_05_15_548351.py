from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T07:05:15:548351"
VERSION = "1.38.0"
DESCRIPTION = "taxes"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="fulfillment", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Order",
        tablename="orders",
        column_name="tax_flagged",
        db_column_name="tax_flagged",
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

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T15:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "partners.status: active | disabled"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="fulfillment", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Partner",
        tablename="partners",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 20,
            "default": "active",
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

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T10:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "participants.email_key: the email as compared (stripped, lower case), for the unique index of the next migration"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="programs", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Participant",
        tablename="participants",
        column_name="email_key",
        db_column_name="email_key",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 320,
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

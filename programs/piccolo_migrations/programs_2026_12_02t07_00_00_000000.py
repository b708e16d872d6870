from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "console_users, console_memberships, console_invites: people who sign in to the manager console"


def _params(**overrides):
    params = {
        "default": "",
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    params.update(overrides)
    return params


# (table class, table name, [(column, class, params)])
TABLES = [
    ("ConsoleUser", "console_users", [
        ("id", Varchar, _params(length=40, primary_key=True)),
        ("email", Varchar, _params(length=320, unique=True)),
        ("display_name", Varchar, _params(length=200)),
        ("password_hash", Text, _params(default=None, null=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ]),
    ("ConsoleMembership", "console_memberships", [
        ("id", Varchar, _params(length=40, primary_key=True)),
        ("user_id", Varchar, _params(length=40, index=True)),
        ("program_id", Varchar, _params(length=40, index=True)),
        ("role", Varchar, _params(length=20)),
        ("user_program", Varchar, _params(length=100, unique=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ]),
    ("ConsoleInvite", "console_invites", [
        ("id", Varchar, _params(length=40, primary_key=True)),
        ("user_id", Varchar, _params(length=40, index=True)),
        ("token_hash", Varchar, _params(length=64, unique=True)),
        ("expires_at", Timestamptz, _params(default=TimestamptzNow())),
        ("used_at", Timestamptz, _params(default=None, null=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ]),
]


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="programs", description=DESCRIPTION
    )
    for class_name, tablename, columns in TABLES:
        manager.add_table(class_name=class_name, tablename=tablename, schema=None, columns=None)
        for name, column_class, params in columns:
            manager.add_column(
                table_class_name=class_name,
                tablename=tablename,
                column_name=name,
                db_column_name=name,
                column_class_name=column_class.__name__,
                column_class=column_class,
                params=params,
                schema=None,
            )
    return manager

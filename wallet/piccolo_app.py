import os

from piccolo.conf.apps import AppConfig

from wallet.tables import ChainHead, Checkpoint, DailyTotal, LedgerEntry, LedgerPosting, SigningKey

APP_CONFIG = AppConfig(
    app_name="wallet",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[LedgerEntry, LedgerPosting, ChainHead, SigningKey, Checkpoint, DailyTotal],
    migration_dependencies=[],
    commands=[],
)

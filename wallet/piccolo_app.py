import os

from piccolo.conf.apps import AppConfig

from wallet.tables import ChainHead, DailyTotal, LedgerEntry, LedgerPosting

APP_CONFIG = AppConfig(
    app_name="wallet",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[LedgerEntry, LedgerPosting, ChainHead, DailyTotal],
    migration_dependencies=[],
    commands=[],
)

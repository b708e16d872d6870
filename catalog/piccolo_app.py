import os

from piccolo.conf.apps import AppConfig

from catalog.tables import Brand, CatalogItem

APP_CONFIG = AppConfig(
    app_name="catalog",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[Brand, CatalogItem],
    migration_dependencies=[],
    commands=[],
)

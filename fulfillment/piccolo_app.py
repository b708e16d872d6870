import os

from piccolo.conf.apps import AppConfig

from fulfillment.tables import Order, Partner, PoolCode, WebhookDelivery

APP_CONFIG = AppConfig(
    app_name="fulfillment",
    migrations_folder_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "piccolo_migrations"),
    table_classes=[Partner, Order, PoolCode, WebhookDelivery],
    migration_dependencies=[],
    commands=[],
)

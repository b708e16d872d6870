from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz, Varchar
from piccolo.table import Table

ID = "2026-12-05T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = ("announcement_mails_due: the emails still to send by when they are due, so the worker's send "
               "pass (every second) reads those only, not the ones that gave up after ten attempts (they keep "
               "sent_at null for good); no index of sent_at, which SQLite chose over it; feed_items_by_participant "
               "(participant_id, id) for the feed's indexes of participant_id and program_id (nothing reads by "
               "program alone), so a page of a participant's feed is read in its order, not sorted from all their "
               "lines (SQLite and Postgres alike)")


class RawTable(Table):
    pass


async def _due_index() -> None:
    await RawTable.raw(
        "CREATE INDEX IF NOT EXISTS announcement_mails_due ON announcement_mails (next_attempt_at) "
        "WHERE sent_at IS NULL AND attempts < 10")
    await RawTable.raw("CREATE INDEX IF NOT EXISTS feed_items_by_participant ON feed_items (participant_id, id)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="programs", description=DESCRIPTION)
    manager.alter_column(table_class_name="AnnouncementMail", tablename="announcement_mails", column_name="sent_at",
                         db_column_name="sent_at", params={"index": False}, old_params={"index": True},
                         column_class=Timestamptz, old_column_class=Timestamptz, schema=None)
    for column in ("program_id", "participant_id"):
        manager.alter_column(table_class_name="FeedItem", tablename="feed_items", column_name=column,
                             db_column_name=column, params={"index": False}, old_params={"index": True},
                             column_class=Varchar, old_column_class=Varchar, schema=None)
    manager.add_raw(_due_index)
    return manager

"""SQL tables owned by the games package."""

from __future__ import annotations

from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.table import Table


class SpinCampaign(Table, tablename="spin_campaigns"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    status = Varchar(length=20, default="draft")  # draft | active | paused | ended
    spec = Text()  # the wheel as designed (JSON), fixed once launched
    created_at = Timestamptz()
    updated_at = Timestamptz()
    launched_at = Timestamptz(null=True, default=None)

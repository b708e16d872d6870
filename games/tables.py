"""SQL tables owned by the games package."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Text, Timestamptz, Varchar
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


class SeedPair(Table, tablename="seed_pairs"):
    """A participant's seed pair. The server seed is sealed while in use and stored in clear
    once revealed (on rotation), with the nonce it reached."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    participant_id = Varchar(length=40, index=True)
    server_seed_hash = Varchar(length=64)
    server_seed = Text()
    client_seed = Varchar(length=64)
    status = Varchar(length=20, default="active")  # active | revealed
    final_nonce = Text(null=True, default=None)
    created_at = Timestamptz()
    revealed_at = Timestamptz(null=True, default=None)


class Spin(Table, tablename="spins"):
    """One spin, as its answer showed it: written after the atomic Redis step (and again,
    harmlessly, when a retried request replays it)."""

    id = Varchar(length=40, primary_key=True)  # the wallet transaction id
    # Read by participant, newest first (history: spins_by_participant, participant_id and
    # id), by campaign (its figures) and, for item prizes only, by program and time (the
    # sweep: the partial index spins_item_prizes); no index by program or pair, which every
    # spin the projector lands would write.
    program_id = Varchar(length=40)
    campaign_id = Varchar(length=40, index=True)
    participant_id = Varchar(length=40)
    pair_id = Varchar(length=40)
    server_seed_hash = Varchar(length=64)
    client_seed = Varchar(length=64)
    nonce = BigInt()
    weights = Text()  # JSON list: the effective weights the choice used
    segment_index = Integer()
    label = Varchar(length=60)
    prize = Text()  # JSON: the prize as configured
    prize_value = BigInt(default=0)  # points the prize cost the program (its points, an item's price)
    cost_points = BigInt(default=0)
    paid_with = Varchar(length=20, default="points")  # points | free_spin
    order_id = Varchar(length=40, null=True, default=None)
    created_at = Timestamptz()

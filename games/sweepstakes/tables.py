"""SQL tables of sweepstakes: the sweepstakes (its design, commitment and proof), the frozen
entries file, the winners and what they were paid, and the admin's free entries."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class Sweepstakes(Table, tablename="sweepstakes"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    status = Varchar(length=20, default="open")  # open | closed | drawn
    spec = Text()  # the design as created (JSON): costs, maximum, winners, prizes, dates, rules
    server_seed_hash = Varchar(length=64)
    server_seed = Text()  # sealed (fulfillment/sealing.py) until the draw publishes it in the proof
    public_id_key = Text()  # sealed: the HMAC key of participants' public ids in the entries file
    committed_at = Timestamptz()
    closes_at = Timestamptz()
    closed_at = Timestamptz(null=True, default=None)
    entries_hash = Varchar(length=64, null=True, default=None)
    total_tickets = BigInt(default=0)
    entrants = BigInt(default=0)
    proof = Text(null=True, default=None)  # the published proof document (JSON), once drawn
    drawn_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class SweepstakesEntriesFile(Table, tablename="sweepstakes_entries_files"):
    """The canonical entries file, frozen at close: exactly the bytes whose hash is published."""

    sweepstakes_id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    entries_hash = Varchar(length=64)
    body = Text()


class SweepstakesWinner(Table, tablename="sweepstakes_winners"):
    """One pick of the draw, winners (rank 1..) then alternates, and its prize's payment."""

    id = Varchar(length=60, primary_key=True)  # <sweepstakes id>:<pick number>
    sweepstakes_id = Varchar(length=40, index=True)
    program_id = Varchar(length=40, index=True)
    pick = Integer()  # 1-based order of the draw
    role = Varchar(length=20)  # winner | alternate
    public_id = Varchar(length=64)
    participant_id = Varchar(length=40, index=True)
    prize = Text(null=True, default=None)  # JSON, winners only
    status = Varchar(length=20, default="pending")  # pending | paid | failed | none (no prize) | alternate
    transaction_id = Varchar(length=40, null=True, default=None)
    order_id = Varchar(length=40, null=True, default=None)
    detail = Text(default="")
    created_at = Timestamptz()


class SweepstakesFreeEntry(Table, tablename="sweepstakes_free_entries"):
    """An entry by the alternate method (no purchase), granted by the admin with a reason."""

    id = Varchar(length=40, primary_key=True)  # the wallet transaction id of the entry
    sweepstakes_id = Varchar(length=40, index=True)
    program_id = Varchar(length=40, index=True)
    participant_id = Varchar(length=40, index=True)
    count = BigInt()
    reason = Text()
    created_at = Timestamptz()

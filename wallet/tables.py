"""The durable ledger: the Redis journal projected into rows, once per transaction."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class LedgerEntry(Table, tablename="ledger_entries"):
    """One row per wallet transaction. `transaction_id` is unique, so a replay is harmless."""

    transaction_id = Varchar(length=40, unique=True)
    program_id = Varchar(length=40, index=True)
    participant_id = Varchar(length=40, null=True, default=None, index=True)
    kind = Varchar(length=30)
    # Net effect on the participant's available balance (what their history shows).
    points = BigInt(default=0)
    # Moves of the participant's lifetime counters, so `rebuild` restores them too.
    earned = BigInt(default=0)
    spent = BigInt(default=0)
    reference = Varchar(length=200, null=True, default=None)
    metadata = Text(default="{}")
    legs = Text(default="[]")
    stream_id = Varchar(length=40, default="")
    created_at = Timestamptz()


class LedgerPosting(Table, tablename="ledger_postings"):
    """Double entry: each leg of a transaction debits one account and credits another.

    `delta` is signed; the postings of one transaction sum to zero.
    """

    # "<transaction id>:<leg>:<d|c>", unique, so a replayed projection inserts nothing.
    posting_id = Varchar(length=60, unique=True)
    transaction_id = Varchar(length=40, index=True)
    program_id = Varchar(length=40, index=True)
    account = Varchar(length=120, index=True)
    delta = BigInt()
    leg = Integer(default=0)

"""The durable ledger: the Redis journal projected into rows, once per transaction."""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class LedgerEntry(Table, tablename="ledger_entries"):
    """One row per wallet transaction. `transaction_id` is unique, so a replay is harmless."""

    transaction_id = Varchar(length=40, unique=True)
    # No index of its own: the unique (program_id, seq) index below leads with it, and one
    # more index is one more write of every entry the projector lands.
    program_id = Varchar(length=40)
    # Indexed with seq only (ledger_entries_participant_seq): their history, the unlinked
    # entries then the chain's (wallet/ledger.py), and what a replay of their lots reads after
    # the expiry sweep's checkpoint (programs/expiry.py). Not alone too: one index keyed by
    # participant fewer for the projector to write (stop 53).
    participant_id = Varchar(length=40, null=True, default=None)
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
    # The hash chain (wallet/chain.py): position in the program's journal order and
    # SHA-256(previous link || canonical bytes), set by the chaining step after projection;
    # null until then. A unique index on (program_id, seq) forbids a fork.
    seq = BigInt(null=True, default=None)
    link = Varchar(length=64, null=True, default=None)


class LedgerPosting(Table, tablename="ledger_postings"):
    """Double entry: each leg of a transaction debits one account and credits another.

    `delta` is signed; the postings of one transaction sum to zero.
    """

    # "<transaction id>:<leg>:<d|c>", unique, so a replayed projection inserts nothing.
    posting_id = Varchar(length=60, unique=True)
    # Read only by program (reconcile's sums by account): no index on the transaction or the
    # account, which every posting the projector lands would write (two a leg).
    transaction_id = Varchar(length=40)
    program_id = Varchar(length=40, index=True)
    account = Varchar(length=120)
    delta = BigInt()
    leg = Integer(default=0)


class ChainHead(Table, tablename="chain_heads"):
    """Each program's chain head: the last linked entry. Read under a lock and updated in the
    same transaction as the links that extend it, so the chain never forks (wallet/chain.py)."""

    program_id = Varchar(length=40, unique=True)
    seq = BigInt(default=0)
    link = Varchar(length=64, default="")
    stream_id = Varchar(length=40, default="")


class SigningKey(Table, tablename="program_signing_keys"):
    """A program's Ed25519 key for its checkpoints (wallet/signing.py): made on first need,
    the private half sealed with the settings' encryption key, the public half published."""

    program_id = Varchar(length=40, unique=True)
    algorithm = Varchar(length=20, default="ed25519")
    public_key = Varchar(length=64)  # hex of the 32 raw bytes
    key_id = Varchar(length=16)  # the first 16 hex digits of SHA-256(public key)
    private_key = Text()  # sealed
    created_at = Timestamptz()


class Checkpoint(Table, tablename="chain_checkpoints"):
    """One program's signed checkpoint of one UTC day of its chain (wallet/checkpoints.py).
    Unique per (program, day): made again, it is not written twice."""

    program_day = Varchar(length=60, unique=True)  # "<program_id>:<YYYY-MM-DD>"
    # No index of its own: chain_checkpoints_latest (program_id, last_seq) leads with it.
    program_id = Varchar(length=40)
    day = Varchar(length=10)
    first_seq = BigInt()
    last_seq = BigInt()
    count = BigInt()
    previous_link = Varchar(length=64)
    head_link = Varchar(length=64)
    merkle_root = Varchar(length=64)
    key_id = Varchar(length=16)
    signed_at = Timestamptz()
    signature = Varchar(length=128)  # hex of the 64-byte Ed25519 signature


class DailyTotal(Table, tablename="daily_totals"):
    """A program's points moved per UTC day, kept by the projector as it writes the ledger
    (wallet/daily.py): the console's 90-day chart reads 90 rows, not the ledger."""

    id = Varchar(length=60, primary_key=True)  # "<program_id>:<YYYY-MM-DD>"
    program_id = Varchar(length=40, index=True)
    day = Varchar(length=10)
    issued = BigInt(default=0)  # into participants' lifetime earned
    spent = BigInt(default=0)  # out of their available balance: redemptions, spins, tickets
    redeemed = BigInt(default=0)  # into the program's redeemed account (gift cards delivered)
    expired = BigInt(default=0)  # into the program's expired account

"""SQL tables owned by the programs package (the system of record for tenants and people)."""

from __future__ import annotations

from piccolo.columns import BigInt, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class Program(Table, tablename="programs"):
    id = Varchar(length=40, primary_key=True)
    name = Varchar(length=200)
    point_name = Varchar(length=40, default="points")
    # Money value of one point, in minor units of `currency` (1 = one cent for USD).
    point_value_minor = Integer(default=1)
    currency = Varchar(length=3, default="USD")
    status = Varchar(length=20, default="active")
    timezone = Varchar(length=64, default="UTC")
    allow_overdraft = Boolean(default=True)
    # Points expire this many months after they were earned, oldest first; null: never.
    points_expire_months = Integer(null=True, default=None)
    # Catalog markup in basis points (250 = 2.5%) on top of the face value's points.
    catalog_markup_bps = Integer(default=0)
    # A claim for a sale older than this many days is refused; null: no window.
    claim_window_days = Integer(null=True, default=None)
    # When a reward would take a participant's reportable total for the year past the
    # threshold without a tax form: "flag" the order, or "refuse" it (tax_form_required).
    tax_form_policy = Varchar(length=10, default="flag")
    # Per tax year overrides of the reporting threshold, minor units: {"2027": 250000}.
    tax_thresholds = Text(default="{}")
    # A manual grant or deduction of more points than this waits for a second person's
    # approval (programs/approvals.py); null: four eyes off.
    approval_threshold_points = BigInt(null=True, default=None)
    # Whether points still pending (earning rules that make them wait) count on points
    # leaderboards when awarded; otherwise they count when released.
    pending_counts_on_boards = Boolean(default=False)
    # Whether anyone may read the program's signed ledger checkpoints
    # (GET /v1/public/programs/{id}/checkpoints): off by default, since counts reveal volume.
    publish_checkpoints = Boolean(default=False)
    created_at = Timestamptz()


class ApiKey(Table, tablename="api_keys"):
    """Program admin and fulfillment partner keys. Only a SHA-256 of the secret is kept."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    kind = Varchar(length=20)  # "admin" | "partner"
    partner_id = Varchar(length=40, null=True, default=None)
    name = Varchar(length=200, default="")
    key_hash = Varchar(length=64)
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)


class Team(Table, tablename="teams"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    # "program_id:name", unique: team names are unique within a program on every engine.
    program_name = Varchar(length=300, unique=True)
    created_at = Timestamptz()


class Participant(Table, tablename="participants"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    external_id = Varchar(length=200)
    # "program_id:external_id", unique: the upsert key on every engine.
    program_external = Varchar(length=260, unique=True)
    # Stable pseudonym for published files (sweepstakes entries): no names or emails there.
    public_id = Varchar(length=40, unique=True)
    display_name = Varchar(length=200)
    email = Varchar(length=320, null=True, default=None)
    # The email as it is compared (stripped, lower case), null without one. A unique index on
    # (program_id, email_key), made by a raw migration (Piccolo has no two-column unique),
    # keeps an email to one participant per program even when two enrolments race; NULLs
    # never collide, and addresses shared before the rule keep theirs on the first holder only.
    email_key = Varchar(length=320, null=True, default=None)
    team_id = Varchar(length=40, null=True, default=None, index=True)
    segment = Varchar(length=100, null=True, default=None)
    status = Varchar(length=20, default="active")
    show_name = Boolean(default=True)
    # When the person joined the program, if given (imports of an existing salesforce);
    # null: created_at is the enrolment. Tenure rules count from it.
    enrolled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class RefreshToken(Table, tablename="refresh_tokens"):
    """One row per issued refresh token; tokens of one login share a family."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40)
    participant_id = Varchar(length=40, index=True)
    family_id = Varchar(length=40, index=True)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    note = Text(default="")
    counter = Integer(default=0)


class ActivityType(Table, tablename="activity_types"):
    """A program's own activity types, beside the built-in ones."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=60)
    program_name = Varchar(length=110, unique=True)
    description = Text(default="")
    created_at = Timestamptz()


class Activity(Table, tablename="activities"):
    """An event from a CRM or partner system (or an approved claim). Unique per program."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    external_id = Varchar(length=200)
    program_external = Varchar(length=260, unique=True)
    type = Varchar(length=60, index=True)
    participant_id = Varchar(length=40, index=True)
    occurred_at = Timestamptz(index=True)
    attributes = Text(default="{}")
    source = Varchar(length=20, default="api")
    received_at = Timestamptz()
    # Set once every award of the activity is recorded; a re-sent batch finishes the rest.
    evaluated_at = Timestamptz(null=True, default=None)


class EarningRule(Table, tablename="earning_rules"):
    """One row per version of a rule; the highest version is the rule as it stands."""

    rule_id = Varchar(length=40, index=True)
    version = Integer()
    rule_version = Varchar(length=60, unique=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    activity_type = Varchar(length=60)
    spec = Text()
    status = Varchar(length=20, default="active")
    created_at = Timestamptz()


class Award(Table, tablename="awards"):
    """What a rule version awarded a participant for an activity: once, by `award_key`."""

    award_key = Varchar(length=140, unique=True)
    program_id = Varchar(length=40, index=True)
    activity_id = Varchar(length=40, index=True)
    rule_id = Varchar(length=40, index=True)
    rule_version = Integer()
    participant_id = Varchar(length=40, index=True)
    points = BigInt(default=0)
    outcome = Varchar(length=30)
    transaction_id = Varchar(length=40, null=True, default=None)
    created_at = Timestamptz()


class Claim(Table, tablename="claims"):
    """A sale a participant claims from the phone, for an admin to approve or reject."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    participant_id = Varchar(length=40, index=True)
    invoice_number = Varchar(length=100)
    program_invoice = Varchar(length=150, index=True)
    invoice_date = Varchar(length=10)
    amount = BigInt()
    currency = Varchar(length=3)
    product = Varchar(length=200)
    status = Varchar(length=20, default="pending")
    duplicate_of = Varchar(length=40, null=True, default=None)
    decision_reason = Text(default="")
    activity_id = Varchar(length=40, null=True, default=None)
    created_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)
    # When the receipt photo (programs/receipts.py) was last sent; null: none.
    receipt_at = Timestamptz(null=True, default=None)
    # How many times the participant fixed and sent a rejected claim again.
    resubmissions = Integer(default=0)


class FeedItem(Table, tablename="feed_items"):
    """What happened to a participant, in plain words. `feed_key` makes writers idempotent."""

    id = Varchar(length=40, primary_key=True)
    feed_key = Varchar(length=200, unique=True)
    # Read by participant, newest first: the index feed_items_by_participant (participant_id,
    # id) serves a page in its order; none by program alone, which nothing reads by.
    program_id = Varchar(length=40)
    participant_id = Varchar(length=40)
    kind = Varchar(length=40)
    text = Text()
    points = BigInt(null=True, default=None)
    reference = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz()


class Leaderboard(Table, tablename="leaderboards"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    entity = Varchar(length=20, default="participants")  # participants | teams
    metric = Varchar(length=20, default="points")  # points | activity_score
    weights = Text(default="{}")  # activity type -> weight, for activity_score
    period = Varchar(length=20, default="month")  # week | month | quarter | all_time | custom
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None)
    status = Varchar(length=20, default="active")
    created_at = Timestamptz()
    count_prizes = Boolean(default=False)  # points boards: spin and sweepstakes points prizes count too


class Funding(Table, tablename="fundings"):
    """Money paid into a program's budget: by Stripe, or recorded offline by the operator."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    source = Varchar(length=20)  # stripe | offline
    status = Varchar(length=30)  # requires_payment | succeeded | failed | canceled
    amount = BigInt()
    currency = Varchar(length=3)
    points = BigInt()
    refunded_amount = BigInt(default=0)
    disputed_amount = BigInt(default=0)
    payment_intent_id = Varchar(length=100, null=True, default=None, unique=True)
    reference = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class StripeEvent(Table, tablename="stripe_events"):
    """Every Stripe event id seen, once; `processed_at` is set when its effect is applied."""

    event_id = Varchar(length=100, unique=True)
    type = Varchar(length=100)
    program_id = Varchar(length=40, null=True, default=None)
    received_at = Timestamptz()
    processed_at = Timestamptz(null=True, default=None)


class Announcement(Table, tablename="announcements"):
    """A message from the program to some of its participants: a line in each one's feed, and
    an email to each who has an address (`AnnouncementMail`, sent by the worker)."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    title = Varchar(length=120)
    body = Text()
    # The audience, as `programs.rules.Audience` JSON ({} for everyone).
    audience = Text(default="{}")
    recipients = Integer(default=0)
    emails = Integer(default=0)
    sent_by = Varchar(length=120)
    created_at = Timestamptz()


class AnnouncementMail(Table, tablename="announcement_mails"):
    """One email still to send (or sent) for an announcement; the worker sends due rows and
    marks them, so a crash resends nothing already marked and loses nothing unmarked."""

    # "<announcement id>:<participant id>", unique: queueing twice queues once.
    id = Varchar(length=100, primary_key=True)
    announcement_id = Varchar(length=40, index=True)
    program_id = Varchar(length=40)
    email = Varchar(length=320)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(index=True)
    # Unsent mails are read through the partial index announcement_mails_due (the worker's
    # send pass); an index of sent_at alone was chosen over it and read every mail that gave up.
    sent_at = Timestamptz(null=True, default=None)
    last_error = Varchar(length=300, null=True, default=None)


class TaxProfile(Table, tablename="tax_profiles"):
    """A participant's tax form (a W-9 in the United States): sealed at rest; the console sees
    the legal name and the last 4 digits of the TIN only."""

    participant_id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    status = Varchar(length=20, default="requested")  # requested | received
    # Sealed JSON {legal_name, address, tin, tin_type}; null until received.
    form = Text(null=True, default=None)
    tin_last4 = Varchar(length=4, null=True, default=None)
    requested_at = Timestamptz(null=True, default=None)
    received_at = Timestamptz(null=True, default=None)

class ConsoleUser(Table, tablename="console_users"):
    """A person who signs in to the manager console: one row per email across the
    installation (stored lower-cased), whatever programs they work in."""

    id = Varchar(length=40, primary_key=True)
    email = Varchar(length=320, unique=True)
    display_name = Varchar(length=200)
    # argon2; null until the person has accepted an invite.
    password_hash = Text(null=True, default=None)
    created_at = Timestamptz()


class ConsoleMembership(Table, tablename="console_memberships"):
    """A console user's role in one program."""

    id = Varchar(length=40, primary_key=True)
    user_id = Varchar(length=40, index=True)
    program_id = Varchar(length=40, index=True)
    role = Varchar(length=20)  # "owner" | "manager" | "viewer"
    # "user_id:program_id", unique: one role per person and program on every engine.
    user_program = Varchar(length=100, unique=True)
    created_at = Timestamptz()


class ConsoleInvite(Table, tablename="console_invites"):
    """A one-use link to set a password. Only a SHA-256 of the token is kept."""

    id = Varchar(length=40, primary_key=True)
    user_id = Varchar(length=40, index=True)
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class ApprovalRequest(Table, tablename="approval_requests"):
    """A money move above the program's approval threshold, waiting for a second person (four
    eyes): approved, it is applied once; rejected, never (programs/approvals.py)."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    kind = Varchar(length=20)  # grant | deduction | redemption | top_up | rule_activation
    participant_id = Varchar(length=40)  # "" for a top-up or a rule activation
    points = BigInt()
    reason = Text(default="")
    # Who asked and who decided: "key:<admin key id>" or "user:<console user id>".
    requested_by = Varchar(length=120)
    # pending -> approving -> approved | failed; pending -> rejected
    status = Varchar(length=20, default="pending", index=True)
    decided_by = Varchar(length=120, null=True, default=None)
    decision_reason = Text(null=True, default=None)
    transaction_id = Varchar(length=40, null=True, default=None)
    created_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)
    # What the kind needs to be carried out and shown (JSON of approvals.Details: the item,
    # the amount, the rule version), and what its approval made (an order or a funding id).
    payload = Text(default="{}")
    outcome_id = Varchar(length=40, null=True, default=None)


class AuditEvent(Table, tablename="audit_events"):
    """Who did what, when: a console user ("user:<id>"), an admin key ("key:<id>") or the
    operator. Money moves come from their journal entries (the projector writes the row);
    other changes write theirs when they happen."""

    id = Varchar(length=60, primary_key=True)  # time-ordered; a money move's follows its transaction id
    program_id = Varchar(length=40, index=True)
    actor = Varchar(length=120, index=True)
    kind = Varchar(length=40, index=True)
    subject = Varchar(length=200, default="")
    detail = Text(default="{}")
    created_at = Timestamptz(index=True)


class ParticipantImport(Table, tablename="participant_imports"):
    """A participant file uploaded in the console, imported by the worker chunk by chunk
    (programs/participant_imports.py). The file is kept only until the import is done."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    status = Varchar(length=20, index=True)
    total_rows = Integer()
    done_rows = Integer(default=0)
    created = Integer(default=0)
    updated = Integer(default=0)
    unchanged = Integer(default=0)
    error_count = Integer(default=0)
    errors = Text(default="[]")  # the first 1,000 bad rows, as JSON
    csv = Text(default="")
    file_name = Varchar(length=200, default="")
    created_by = Varchar(length=120, default="")
    created_at = Timestamptz()
    lease_until = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
    failure = Varchar(length=300, null=True, default=None)


class ExpiryCheckpoint(Table, tablename="expiry_checkpoints"):
    """A participant's lots replayed through one position of their program's chain
    (programs/expiry.py): the expiry sweep saves it, and the next replay (the sweep's, or the
    `expiring` of a wallet read) starts from it and reads only the ledger entries after it."""

    id = Varchar(length=90, primary_key=True)  # "<program_id>:<participant_id>"
    program_id = Varchar(length=40)
    # The chain position (wallet/chain.py seq) of the last entry replayed into `state`; every
    # entry at or below it is linked, so none can appear below it later.
    through_seq = BigInt(default=0)
    state = Text(default="{}")  # JSON: programs/expiry.py Replay
    updated_at = Timestamptz()

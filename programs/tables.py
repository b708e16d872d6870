"""SQL tables owned by the programs package (the system of record for tenants and people)."""

from __future__ import annotations

from piccolo.columns import Boolean, Integer, Text, Timestamptz, Varchar
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
    team_id = Varchar(length=40, null=True, default=None, index=True)
    segment = Varchar(length=100, null=True, default=None)
    status = Varchar(length=20, default="active")
    show_name = Boolean(default=True)
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

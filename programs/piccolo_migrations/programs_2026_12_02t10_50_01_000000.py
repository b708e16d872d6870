from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T10:50:01:000000"
VERSION = "1.38.0"
DESCRIPTION = ("An email is one participant's per program: email_key filled in for the participants already "
               "there (the first holder of an address shared before the rule keeps it), then a unique index on "
               "(program_id, email_key) (Piccolo runs raw SQL before new columns, hence apart)")

BATCH = 500


class RawTable(Table):
    pass


def normalized(email: str | None) -> str | None:
    # As programs/participants.py compares them (copied, so this migration never changes).
    key = (email or "").strip().lower()
    return key or None


async def fill_email_keys() -> int:
    """Gives each participant without an email_key theirs, unless another participant of the
    program holds that address already (then the later ones keep NULL, which the index lets
    be: they sign in by no code, as before). Oldest first; safe to run again. Answers how
    many rows it keyed."""
    rows = await RawTable.raw(
        "SELECT id, program_id, email, email_key FROM participants "
        "WHERE email IS NOT NULL AND email <> '' ORDER BY created_at, id")
    taken = {(r["program_id"], r["email_key"]) for r in rows if r["email_key"] is not None}
    wanted: list[tuple[str, str]] = []
    for row in rows:
        key = normalized(row["email"])
        if row["email_key"] is not None or key is None or (row["program_id"], key) in taken:
            continue
        taken.add((row["program_id"], key))
        wanted.append((row["id"], key))
    for start in range(0, len(wanted), BATCH):
        part = wanted[start:start + BATCH]
        cases = " ".join("WHEN {} THEN {}" for _ in part)
        ids = ", ".join("{}" for _ in part)
        args = [value for pair in part for value in pair] + [participant for participant, _ in part]
        await RawTable.raw(f"UPDATE participants SET email_key = CASE id {cases} END WHERE id IN ({ids})", *args)
    return len(wanted)


async def _unique_email_index() -> None:
    await fill_email_keys()
    await RawTable.raw(
        "CREATE UNIQUE INDEX IF NOT EXISTS participants_program_email_key ON participants (program_id, email_key)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="programs", description=DESCRIPTION)
    manager.add_raw(_unique_email_index)
    return manager

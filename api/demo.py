"""The demo program `make run` seeds once and reuses, and what it prints."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from api.auth import Authenticator
from api.settings import Settings
from programs import credentials, sessions, sign_in_links
from programs.participants import NewParticipant, upsert_participant
from programs.programs import NewProgram, create_program, find_program_by_name
from programs.teams import NewTeam, create_team, list_teams
from wallet import accounts
from wallet.store import WalletStore
from kernel.redis_functions import connect
from kernel.idempotency import Idem
from kernel import keys as kernel_keys

DEMO_PROGRAM = "ThermoPro Channel Rewards (demo)"
DEMO_OWNER = "owner@thermopro-demo.example"


async def _demo_admin_key(path: Path, program_id: str) -> str:
    """The demo's one admin key: kept beside the other generated secrets (mode 0600) so every
    `make run` prints the same key instead of adding another to the program."""
    if path.exists():
        kept = path.read_text().strip()
        parts = credentials.split_key(kept)
        record = await credentials.load_key(parts[0]) if parts else None
        if (parts and record is not None and not record.revoked and record.program_id == program_id
                and credentials.secret_matches(parts[1], record.key_hash)):
            return kept
    _, admin_key = await credentials.issue_key(program_id, "admin", name="make run")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(admin_key)
    return admin_key


async def _demo_owner_password(path: Path, program_id: str) -> str:
    """The demo console owner's password: generated once, kept beside the admin key (mode
    0600), and set again on every run so the printed one always works."""
    import secrets

    from programs import console_users

    password = path.read_text().strip() if path.exists() else ""
    if len(password) < console_users.MIN_PASSWORD:
        password = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
    await console_users.create_with_password(program_id, DEMO_OWNER, "owner", password, "Demo Owner")
    return password


async def seed_demo(settings: Settings, new_operator_key: str | None, host: str, port: int) -> str:
    client = connect(settings.redis_url or "", cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
    wallets = WalletStore(client)
    await wallets.load_functions()
    try:
        program = await find_program_by_name(DEMO_PROGRAM)
        if program is None:
            program, _ = await create_program(NewProgram(name=DEMO_PROGRAM, point_name="ThermoPoints"))
            await wallets.set_program_config(program.id, overdraft="1")
        existing = (await list_teams(program.id)).items
        team = existing[0] if existing else await create_team(program.id, NewTeam(name="Northside HVAC Supply"))
        jill, _ = await upsert_participant(
            program.id,
            NewParticipant(external_id="dealer-42-jill", display_name="Jill Dawson",
                           email="jill@northside-hvac.example", team_id=team.id, segment="gold"),
        )
        await wallets.open_wallet(program.id, jill.id)
        # A welcome grant, once: the idempotency key makes later runs replay it.
        welcome = Idem(key=kernel_keys.idempotency(program.id, "admin", "demo-welcome"), fingerprint="demo-welcome")
        await accounts.grant(wallets, program.id, jill.id, 500, "Welcome to ThermoPro Channel Rewards", welcome)
        admin_key = await _demo_admin_key(settings.data_path / "demo-admin-key", program.id)
        owner_password = await _demo_owner_password(settings.data_path / "demo-console-password", program.id)
        refresh = await sessions.start_session(program.id, jill.id, timedelta(days=settings.refresh_token_ttl_days))
        auth = Authenticator(client, wallets, settings.jwt_secret or "", None, settings.access_token_ttl_seconds)
        access = auth.access_token(program.id, jill.id)
        link = await sign_in_links.issue_sign_in_link(wallets, settings.public_base, program.id, jill.id)
    finally:
        await client.aclose()
    base = f"http://{host}:{port}"
    lines = [
        "",
        "reward-wallet demo",
        "==================",
        f"API:                 {base}   (OpenAPI docs: {base}/schema)",
        f"Program:             {program.name}  id={program.id}",
        f"Admin key:           {admin_key}",
        f"Participant:         {jill.display_name}  id={jill.id}",
        f"Access token (15m):  {access}",
        f"Refresh token:       {refresh}",
        f"Phone app:           {sign_in_links.app_url(settings.public_base, program.id)}",
        f"Sign-in link (15m, one use, opens the app as {jill.display_name}):",
        f"  {link.url}",
        f"Console:             {settings.public_base}/console/sign-in",
        f"Console owner:       {DEMO_OWNER}",
        f"Console password:    {owner_password}",
    ]
    if new_operator_key:
        lines.append(f"Operator key (shown once, store it safely): {new_operator_key}")
    lines += [
        "",
        "Try:",
        f"  curl -s {base}/v1/me/wallet -H 'Authorization: Bearer {access}'",
        f"  curl -s -X POST {base}/v1/points/grants -H 'Authorization: Bearer {admin_key}' \\",
        "       -H 'Idempotency-Key: first-grant' -H 'Content-Type: application/json' \\",
        f"       -d '{{\"participant_id\": \"{jill.id}\", \"points\": 150, \"reason\": \"Completed ThermoPro training\"}}'",
        "",
    ]
    return "\n".join(lines)

"""Console users in the domain and through the CLI: one person per email, roles per
program, argon2 passwords, and `reward-wallet console-user create --password-stdin`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from programs import console_users
from tests.api.test_cli import REWARD_WALLET, cli, isolated_env
from tests.factories import new_program, random_ref

pytestmark = pytest.mark.sql


async def test_create_with_password_then_authenticate(client: Any) -> None:
    program = await new_program(client)
    email = f"{random_ref('cli')}@console.example"
    created = await console_users.create_with_password(program.id, email.upper(), "manager", "a good password")
    assert created.email == email and created.invite_url is None
    person = await console_users.authenticate(email, "a good password")
    assert person is not None and person.id == created.id
    assert await console_users.authenticate(email, "a bad password") is None
    assert await console_users.authenticate("nobody@console.example", "a good password") is None
    with pytest.raises(console_users.Invalid):
        await console_users.create_with_password(program.id, email, "owner", "short")


@pytest.mark.one_store
def test_an_unknown_email_costs_the_same_argon2_work_as_a_known_one() -> None:
    # The hash an unknown email is checked against carries the hasher's own parameters, so
    # the refusal takes as long as a wrong password's and does not tell the email is unknown.
    hasher = console_users._hasher
    assert not hasher.check_needs_rehash(console_users._DUMMY_HASH)
    assert hasher.hash("any password").split("$")[1:4] == console_users._DUMMY_HASH.split("$")[1:4]


async def test_a_program_keeps_one_owner(client: Any) -> None:
    program = await new_program(client)
    owner = await console_users.create_with_password(program.id, f"{random_ref('o')}@c.example", "owner",
                                                     "a good password")
    with pytest.raises(console_users.Conflict):
        await console_users.change_role(program.id, owner.id, "viewer")
    with pytest.raises(console_users.Conflict):
        await console_users.remove_member(program.id, owner.id)


@pytest.mark.one_store  # the CLI reading its input; console users' SQL is the other tests'
def test_the_cli_creates_an_owner_from_stdin_and_adds_a_program_for_the_same_email(tmp_path: Path) -> None:
    first = json.loads(cli(tmp_path, "program", "create", "First", "--json").stdout)["program_id"]
    second = json.loads(cli(tmp_path, "program", "create", "Second", "--json").stdout)["program_id"]

    def create(program_id: str, email: str, *extra: str, password: str = "stdin password 1\n") -> Any:
        return subprocess.run([REWARD_WALLET, "console-user", "create", program_id, email, *extra],
                              env=isolated_env(tmp_path), input=password, capture_output=True, text=True, timeout=120)

    made = create(first, "Boss@Acme.example", "--role", "owner", "--password-stdin")
    assert made.returncode == 0, made.stderr
    assert "boss@acme.example" in made.stdout and "/console/sign-in" in made.stdout
    assert "stdin password" not in made.stdout + made.stderr
    again = create(second, "boss@acme.example", "--role", "viewer", "--password-stdin")
    assert again.returncode == 0, again.stderr
    invited = create(first, "new@acme.example", "--role", "manager")
    assert "/console/invite/" in invited.stdout
    bad = create(first, "x@acme.example", "--role", "admin", "--password-stdin")
    assert bad.returncode == 2 and "--role" in bad.stderr
    short = create(first, "y@acme.example", "--password-stdin", password="short\n")
    assert short.returncode == 1 and "10 characters" in short.stderr
    with sqlite3.connect(tmp_path / "reward-wallet.sqlite3") as db:
        people = db.execute("SELECT id, password_hash FROM console_users WHERE email = 'boss@acme.example'").fetchall()
        assert len(people) == 1 and people[0][1].startswith("$argon2")
        roles = sorted(db.execute("SELECT program_id, role FROM console_memberships WHERE user_id = ?",
                                  (people[0][0],)).fetchall())
    assert roles == sorted([(first, "owner"), (second, "viewer")])

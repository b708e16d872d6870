"""The program's earning rules as stored: every change is a new version, and retiring a
rule stops it for activities evaluated from then on."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Literal

import msgspec

from programs.activities import program_types
from programs.participants import check_teams
from programs.rules import RuleSpec, check_rule
from programs.tables import EarningRule
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from kernel.pages import page_of


class RuleVersion(msgspec.Struct, frozen=True):
    rule_id: str
    version: int
    status: Literal["active", "retired"]
    spec: RuleSpec
    created_at: datetime


class RuleView(msgspec.Struct, frozen=True):
    id: str
    version: int
    status: str
    name: str
    activity_type: str
    rule: RuleSpec
    created_at: datetime


class RuleDetail(msgspec.Struct, frozen=True):
    id: str
    version: int
    status: str
    rule: RuleSpec
    versions: list[RuleView]


class RulePage(msgspec.Struct, frozen=True):
    items: list[RuleView]
    next_cursor: str | None = None


_decode_spec = msgspec.json.Decoder(RuleSpec).decode


def _version(row: dict) -> RuleVersion:
    return RuleVersion(rule_id=row["rule_id"], version=row["version"], status=row["status"],
                       spec=_decode_spec(row["spec"]), created_at=utc(row["created_at"]))


def view(version: RuleVersion) -> RuleView:
    return RuleView(id=version.rule_id, version=version.version, status=version.status, name=version.spec.name,
                    activity_type=version.spec.activity_type, rule=version.spec, created_at=version.created_at)


def validate(spec: RuleSpec, known_types: set[str]) -> None:
    problem = check_rule(spec)
    if problem:
        raise Invalid(problem, field="rule")
    for name, field in ((spec.activity_type, "activity_type"),
                        (spec.multiplier.when_activity_type if spec.multiplier else None, "multiplier"),
                        (spec.deadline.after_activity_type if spec.deadline else None, "deadline")):
        if name is not None and name not in known_types:
            raise Invalid(f"unknown activity type {name!r}", field=field)


async def _insert(program_id: str, rule_id: str, version: int, spec: RuleSpec) -> None:
    await EarningRule.insert(EarningRule(
        rule_id=rule_id, version=version, rule_version=f"{rule_id}:{version}", program_id=program_id,
        name=spec.name, activity_type=spec.activity_type, spec=msgspec.json.encode(spec).decode(),
        status="active", created_at=datetime.now(timezone.utc),
    )).run()


async def create_rule(program_id: str, spec: RuleSpec) -> RuleView:
    validate(spec, await program_types(program_id))
    await check_teams(program_id, spec.participants.team_ids if spec.participants else None,
                      "participants.team_ids")
    rule_id = new_id("rule")
    await _insert(program_id, rule_id, 1, spec)
    return view((await versions(program_id, rule_id))[-1])


async def versions(program_id: str, rule_id: str) -> list[RuleVersion]:
    rows = await EarningRule.select().where(
        (EarningRule.program_id == program_id) & (EarningRule.rule_id == rule_id)).order_by(EarningRule.version).run()
    if not rows:
        raise NotFound("no such earning rule")
    return [_version(r) for r in rows]


async def free_spins_of(program_id: str, rule_versions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The free-spin tokens each (rule, version) gives with an award; versions giving none
    are left out."""
    if not rule_versions:
        return {}
    rows = await EarningRule.select(EarningRule.rule_id, EarningRule.version, EarningRule.spec).where(
        (EarningRule.program_id == program_id)
        & EarningRule.rule_version.is_in([f"{rule_id}:{version}" for rule_id, version in rule_versions])).run()
    given = {(r["rule_id"], r["version"]): _decode_spec(r["spec"]).free_spins for r in rows}
    return {key: spins for key, spins in given.items() if spins}


async def update_rule(program_id: str, rule_id: str, spec: RuleSpec) -> RuleView:
    """Answers the new version. Two concurrent edits cannot both become version n+1."""
    validate(spec, await program_types(program_id))
    await check_teams(program_id, spec.participants.team_ids if spec.participants else None,
                      "participants.team_ids")
    current = (await versions(program_id, rule_id))[-1]
    if current.status == "retired":
        raise Conflict("a retired rule cannot change")
    try:
        await _insert(program_id, rule_id, current.version + 1, spec)
    except Exception:
        raise Conflict("the rule changed meanwhile; read it again and retry") from None
    return view((await versions(program_id, rule_id))[-1])


async def activate_version(program_id: str, rule_id: str, version: int, spec: RuleSpec) -> RuleView:
    """Makes `spec` the rule's `version` (1: a new rule under `rule_id`), exactly once: when an
    earlier attempt made it already, answers it; when the rule moved on meanwhile (another
    version, retired), refuses, so an approval activates exactly what was asked for."""
    validate(spec, await program_types(program_id))
    await check_teams(program_id, spec.participants.team_ids if spec.participants else None,
                      "participants.team_ids")
    rows = await EarningRule.select().where(
        (EarningRule.program_id == program_id) & (EarningRule.rule_id == rule_id)).order_by(EarningRule.version).run()
    if rows:
        current = _version(rows[-1])
        if current.version == version and msgspec.json.encode(current.spec) == msgspec.json.encode(spec):
            return view(current)
        if current.status == "retired":
            raise Conflict("the rule was retired meanwhile")
        if current.version != version - 1:
            raise Conflict(f"the rule changed meanwhile (it is at version {current.version}): simulate it again")
    elif version != 1:
        raise NotFound("no such earning rule")
    try:
        await _insert(program_id, rule_id, version, spec)
    except Exception:
        raise Conflict("the rule changed meanwhile; read it again and retry") from None
    return view((await versions(program_id, rule_id))[-1])


def digest(program_id: str, rule_id: str, spec: RuleSpec) -> str:
    """Names one exact rule (its program, its id or "" for a new one, and its spec): what a
    simulation ran, what an activation asked for."""
    return hashlib.sha256(b"|".join([program_id.encode(), rule_id.encode(), msgspec.json.encode(spec)])).hexdigest()


async def retire_rule(program_id: str, rule_id: str) -> RuleView:
    await versions(program_id, rule_id)
    await EarningRule.update({EarningRule.status: "retired"}).where(
        (EarningRule.program_id == program_id) & (EarningRule.rule_id == rule_id)).run()
    return view((await versions(program_id, rule_id))[-1])


async def rule_detail(program_id: str, rule_id: str) -> RuleDetail:
    history = await versions(program_id, rule_id)
    current = history[-1]
    return RuleDetail(id=rule_id, version=current.version, status=current.status, rule=current.spec,
                      versions=[view(v) for v in history])


async def rule_page(program_id: str, include_retired: bool, limit: int, cursor: str | None) -> RulePage:
    """The current version of every rule, newest rule first."""
    rules = await current_rules(program_id, include_retired=include_retired)
    page, more = page_of(list(reversed(rules)), lambda r: r.rule_id, limit, cursor)
    return RulePage(items=[view(r) for r in page], next_cursor=more)


async def current_rules(program_id: str, include_retired: bool = False) -> list[RuleVersion]:
    """The latest version of each rule, oldest rule first."""
    rows = await EarningRule.select().where(EarningRule.program_id == program_id) \
        .order_by(EarningRule.rule_id).order_by(EarningRule.version).run()
    latest: dict[str, RuleVersion] = {}
    for row in rows:
        latest[row["rule_id"]] = _version(row)
    rules = list(latest.values())
    return rules if include_retired else [r for r in rules if r.status == "active"]

"""A participant's tax form: a W-9 (United States) filled in from the app.

Rewards paid to people who are not the program's employees are reportable income above a
yearly threshold (fulfillment/taxes.py counts them). The form holds a legal name, an
address and a taxpayer id (TIN); it is sealed at rest as a whole, and every view of it, the
console's included, shows the name and the last 4 digits of the TIN only. Only the year-end
tax report opens the rest.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from fulfillment.sealing import Sealer
from kernel.clock import utc
from kernel.errors import Invalid, NotFound
from programs.feed import FeedEntry, publish
from programs.tables import Participant, TaxProfile

TaxStatus = Literal["none", "requested", "received"]
_DIGITS = re.compile(r"[^0-9]")


class Address(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    line1: Annotated[str, Meta(min_length=1, max_length=200)]
    city: Annotated[str, Meta(min_length=1, max_length=100)]
    state: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    postal_code: Annotated[str, Meta(pattern=r"^[0-9]{5}(-?[0-9]{4})?$")]
    line2: Annotated[str, Meta(max_length=200)] | None = None


class TaxForm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A W-9's facts. `tin` with or without dashes: an SSN (123-45-6789) or an EIN (12-3456789)."""

    legal_name: Annotated[str, Meta(min_length=1, max_length=200)]
    tin: Annotated[str, Meta(min_length=9, max_length=11)]
    tin_type: Literal["ssn", "ein"]
    address: Address
    # The person certifies the form is correct (the W-9's signature line).
    certified: bool


class TaxProfileView(msgspec.Struct, frozen=True, omit_defaults=True):
    status: TaxStatus
    legal_name: str | None = None
    tin_last4: str | None = None
    requested_at: datetime | None = None
    received_at: datetime | None = None


def checked(form: TaxForm) -> TaxForm:
    digits = _DIGITS.sub("", form.tin)
    if len(digits) != 9 or len(set(digits)) == 1:
        raise Invalid("a TIN has 9 digits (SSN 123-45-6789, EIN 12-3456789)", field="tin")
    if not form.certified:
        raise Invalid("certify that the form is correct", field="certified")
    return msgspec.structs.replace(form, tin=digits, legal_name=form.legal_name.strip())


async def submit_form(program_id: str, participant_id: str, form: TaxForm, sealer: Sealer) -> TaxProfileView:
    """The participant's form, received (again: a new form replaces the old one)."""
    form = checked(form)
    now = datetime.now(timezone.utc)
    values = {TaxProfile.status: "received", TaxProfile.form: sealer.seal(msgspec.to_builtins(form)),
              TaxProfile.tin_last4: form.tin[-4:], TaxProfile.received_at: now}
    await TaxProfile.insert(TaxProfile(participant_id=participant_id, program_id=program_id, status="received",
                                       form=values[TaxProfile.form], tin_last4=form.tin[-4:], received_at=now)) \
        .on_conflict(target=TaxProfile.participant_id, action="DO UPDATE",
                     values=list(values.items())).run()
    return await profile(program_id, participant_id, sealer)


async def participant_in(program_id: str, participant_id: str) -> None:
    person = await Participant.select(Participant.id).where(
        (Participant.id == participant_id) & (Participant.program_id == program_id)).first().run()
    if person is None:
        raise NotFound("no such participant")


async def request_form(program_id: str, participant_id: str, sealer: Sealer) -> TaxProfileView:
    """A program asks a participant for the form: a feed line says where to fill it in."""
    await participant_in(program_id, participant_id)
    now = datetime.now(timezone.utc)
    await TaxProfile.insert(TaxProfile(participant_id=participant_id, program_id=program_id, status="requested",
                                       requested_at=now)) \
        .on_conflict(target=TaxProfile.participant_id, action="DO UPDATE",
                     values=[(TaxProfile.requested_at, now)]).run()
    await publish(program_id, [FeedEntry(key=f"tax-form-request:{participant_id}:{now.date().isoformat()}",
                                         participant_id=participant_id, kind="tax_form_requested",
                                         text="Please fill in your tax form (W-9) in the app: your rewards this "
                                              "year may need to be reported.")])
    return await profile(program_id, participant_id, sealer)


async def profile(program_id: str, participant_id: str, sealer: Sealer) -> TaxProfileView:
    row = await TaxProfile.select().where((TaxProfile.participant_id == participant_id)
                                          & (TaxProfile.program_id == program_id)).first().run()
    if row is None:
        return TaxProfileView(status="none")
    name = sealer.open(row["form"])["legal_name"] if row["form"] else None
    return TaxProfileView(status=row["status"], legal_name=name, tin_last4=row["tin_last4"],
                          requested_at=utc(row["requested_at"]), received_at=utc(row["received_at"]))


async def has_form(program_id: str, participant_id: str) -> bool:
    return await TaxProfile.exists().where((TaxProfile.participant_id == participant_id)
                                           & (TaxProfile.program_id == program_id)
                                           & (TaxProfile.status == "received")).run()


async def forms_of(program_id: str, participant_ids: list[str], sealer: Sealer) -> dict[str, TaxForm]:
    """The whole forms, opened: for the year-end report only."""
    if not participant_ids:
        return {}
    rows: list[dict[str, Any]] = await TaxProfile.select(TaxProfile.participant_id, TaxProfile.form).where(
        (TaxProfile.program_id == program_id) & TaxProfile.participant_id.is_in(participant_ids)
        & (TaxProfile.status == "received")).run()
    return {r["participant_id"]: msgspec.convert(sealer.open(r["form"]), TaxForm) for r in rows if r["form"]}

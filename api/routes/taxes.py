"""Taxes: a participant's W-9 from the app, where they stand this year, the year-end report."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post, put
from litestar.params import Parameter

from api.auth import admin_only, participant_only, principal_of
from api.routes.participants import program_of
from fulfillment import taxes
from fulfillment.sealing import Sealer
from programs import audit, tax_profiles
from programs.programs import get_program

Year = Annotated[int, Parameter(ge=1900, le=2199, description="the tax year, in the program's time zone")]
# What a summary's year total counts (fulfillment/taxes.py summary: the journal's newest entries).
_TOTAL = (" The year's total counts a redemption made a moment ago, before its order is recorded; while "
          "recording is more than 2,000 journal entries behind, an older unrecorded order can be missing from it "
          "until it is recorded (a redemption's own threshold check counts them all).")


@get("/v1/me/tax-profile", guards=[participant_only], operation_id="getMyTaxProfile", summary="My tax form and year",
     description="This tax year's reportable rewards against the threshold, and whether a tax form (W-9) is on "
                 "file: the legal name and the last 4 digits of the TIN only." + _TOTAL, tags=["taxes"])
async def my_summary(request: Request[Any, Any, Any], sealer: Sealer) -> taxes.TaxSummary:
    principal = principal_of(request)
    return await taxes.summary(await get_program(principal.program_id or ""), principal.subject_id, sealer,
                               journal=request.app.state.redis)


@put("/v1/me/tax-profile", guards=[participant_only], operation_id="submitMyTaxForm", summary="Send my W-9",
     description="Legal name, address and TIN (SSN or EIN, dashes optional), certified. Sealed at rest; a new "
                 "form replaces the old one. Answers the summary, which never shows the whole TIN.", tags=["taxes"])
async def submit(request: Request[Any, Any, Any], data: tax_profiles.TaxForm, sealer: Sealer) -> taxes.TaxSummary:
    principal = principal_of(request)
    await tax_profiles.submit_form(principal.program_id or "", principal.subject_id, data, sealer)
    return await taxes.summary(await get_program(principal.program_id or ""), principal.subject_id, sealer,
                               journal=request.app.state.redis)


@get("/v1/participants/{participant_id:str}/tax-profile", guards=[admin_only], operation_id="getTaxProfile",
     summary="A participant's tax form and year", description="The name and the last 4 digits of the TIN only." + _TOTAL,
     tags=["taxes"])
async def participant_summary(request: Request[Any, Any, Any], participant_id: str,
                              sealer: Sealer) -> taxes.TaxSummary:
    program = await get_program(program_of(request))
    await tax_profiles.participant_in(program.id, participant_id)
    return await taxes.summary(program, participant_id, sealer, journal=request.app.state.redis)


@post("/v1/participants/{participant_id:str}/tax-profile/request", guards=[admin_only],
      operation_id="requestTaxForm", summary="Ask for a W-9",
      description="Marks the form requested and tells the participant in their feed where to fill it in.",
      tags=["taxes"], status_code=200)
async def request_form(request: Request[Any, Any, Any], participant_id: str, sealer: Sealer) -> taxes.TaxSummary:
    program = await get_program(program_of(request))
    await tax_profiles.request_form(program.id, participant_id, sealer)
    return await taxes.summary(program, participant_id, sealer, journal=request.app.state.redis)


@get("/v1/program/tax-report", guards=[admin_only], operation_id="exportTaxReport", summary="Year-end tax report",
     description="CSV: one row per participant whose rewards in `year` reached the threshold, with the fields a "
                 "1099-MISC filing needs (the whole TIN: keep the file safe). Participants without a form are "
                 "listed with `form` = missing.", tags=["taxes"], media_type="text/csv")
async def report(request: Request[Any, Any, Any], year: Year, sealer: Sealer) -> Response[str]:
    text = await taxes.report_csv(await get_program(program_of(request)), year, sealer)
    # The file holds whole taxpayer ids: who took it, and when, is on the record.
    await audit.record(program_of(request), f"key:{principal_of(request).subject_id}", "tax_report.exported",
                       str(year))
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="tax-report-{year}.csv"'})


ROUTES = [my_summary, submit, participant_summary, request_form, report]

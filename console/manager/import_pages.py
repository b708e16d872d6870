"""Participant imports from the console: a CSV uploaded on the Participants page becomes an
import job the worker runs (programs/participant_imports.py); the job's page shows its
progress (a small script asks for it each second; without the script, a Refresh link) and,
when it is done, the counts and every bad row with its number and the reason."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from api.problems import status_for
from console.manager.uploads import UPLOAD_LIMIT, uploaded_text
from console.manager.web import InProgram, back, checked_form, in_program, page, refused, render
from kernel.errors import DomainError
from programs import audit, participant_imports
from programs.console_users import MANAGES

P = "/console/p/{program_id:str}"


@post(f"{P}/participants/import", include_in_schema=False, status_code=200, request_max_body_size=UPLOAD_LIMIT)
async def upload(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        name, text = await uploaded_text(request)
        job = await participant_imports.queue_import(program_id, text, name, f"user:{ctx.signed.person.id}")
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "participants.import", job.id,
                       file=job.file_name, rows=job.total_rows)
    return back(program_id, f"participants/imports/{job.id}")


async def _job(request: Request[Any, Any, Any], program_id: str,
               job_id: str) -> tuple[InProgram, participant_imports.ImportJob] | Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    try:
        return ctx, await participant_imports.import_job(program_id, job_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such import.", ctx=None)


@get(f"{P}/participants/imports/{{job_id:str}}", include_in_schema=False)
async def job_page(request: Request[Any, Any, Any], program_id: str, job_id: str) -> Response[Any]:
    found = await _job(request, program_id, job_id)
    if not isinstance(found, tuple):
        return found
    ctx, job = found
    return page(ctx, "console/participant_import.html", f"Import of {job.file_name}", "participants", request,
                job=job)


@get(f"{P}/participants/imports/{{job_id:str}}/progress", include_in_schema=False)
async def job_progress(request: Request[Any, Any, Any], program_id: str, job_id: str) -> Response[Any]:
    """The figures the page's script shows while the import runs."""
    found = await _job(request, program_id, job_id)
    if not isinstance(found, tuple):
        return found
    _, job = found
    return Response({"status": job.status, "total_rows": job.total_rows, "done_rows": job.done_rows,
                     "created": job.created, "updated": job.updated, "unchanged": job.unchanged,
                     "error_count": job.error_count})


ROUTES = [upload, job_page, job_progress]

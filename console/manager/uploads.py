"""A file a console form uploads, as text: UTF-8 with or without Excel's byte-order mark,
anything else refused in words that say how to save the file right."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile

from kernel.errors import Invalid

# A 50,000-row participant file with long names and emails is about 5 MB.
UPLOAD_LIMIT = 32 * 1024 * 1024


async def uploaded_text(request: Request[Any, Any, Any], field: str = "file") -> tuple[str, str]:
    """(file name, text) of the form's file field."""
    upload = (await request.form()).get(field)
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("choose a file to upload", field=field)
    data = await upload.read()
    try:
        return upload.filename, data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the file is not UTF-8 text: in Excel, save it as \"CSV UTF-8 (Comma delimited)\"; in "
                      "Google Sheets, File > Download > CSV", field=field) from None

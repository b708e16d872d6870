"""From a console form to the domain's own types and back: fields as typed, times in UTC,
and msgspec's refusal reworded with the form's labels (the words of the refusal are the
domain type's; only the place it names is translated). No rule lives here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from kernel.clock import utc
from kernel.errors import Invalid

T = TypeVar("T")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]+)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def utc_field(text: str) -> str | None:
    """A `datetime-local` field, read as UTC ("2026-12-01T09:30" -> "2026-12-01T09:30:00+00:00");
    empty is None. Anything else goes to the domain as typed, which refuses it."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", text):
        return text + (":00" if len(text) == 16 else "") + "+00:00"
    return text


def shown_time(moment: datetime | None) -> str:
    """A time as a `datetime-local` field shows it, in UTC."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M") if moment else ""


def where(path: str, names: dict[str, str], groups: dict[str, str]) -> str:
    """"$.segments[1].prize.points" -> "Segment 2, points", with the form's words."""
    words: list[str] = []
    steps = _STEP.findall(path)
    for number, (name, index) in enumerate(steps):
        if index:
            words[-1] = f"{words[-1]} {int(index) + 1}"
        elif name in groups and number + 1 < len(steps) and steps[number + 1][1]:
            words.append(groups[name])
        elif name in names:
            words.append(names[name])
    return ", ".join(words)


def convert(data: dict[str, Any], kind: type[T], names: dict[str, str], groups: dict[str, str] | None = None) -> T:
    """The domain type of a form (numbers typed as text are read as numbers); a refusal is
    an Invalid whose text says which field, in the form's words."""
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        found = _AT.match(str(exc))
        message, path = (found.group("message"), found.group("path") or "$") if found else (str(exc), "$")
        missing = _MISSING.match(message)
        if missing:
            path, message = f"{path}.{missing.group('field')}", "this field is required"
        place = where(path, names, groups or {})
        raise Invalid(f"{place[:1].upper() + place[1:]}: {message}" if place else message) from None

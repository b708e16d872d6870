"""Supplier feeds: a JSON array or a CSV of items, upserted by `sku`, bad rows reported.

CSV columns (header row required): sku, brand, name, value_type (fixed|variable),
face_value, min_value, max_value (minor units), countries (ISO codes separated by `;`),
status (active|disabled), categories (`;`), logo_url. JSON: a list of objects with the same
keys (countries and categories as lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from catalog.item_writes import check_values, create_item, update_item, upsert_brand
from catalog.items import BrandSpec, ItemChanges, NewItem
from catalog.tables import CatalogItem
from programs.programs import Money, ProgramView
from programs.spreadsheet import describe, read_sheet, text_problem, whole_number
from kernel.errors import DomainError, Invalid

Format = Literal["json", "csv"]


class RowError(msgspec.Struct, frozen=True):
    row: int
    sku: str | None
    error: str


class ImportedItem(msgspec.Struct, frozen=True):
    row: int
    sku: str
    id: str
    status: Literal["created", "updated"]


class ImportReport(msgspec.Struct, frozen=True):
    created: int
    updated: int
    errors: list[RowError]
    # Each good row's catalog item id, so a supplier's system can keep our ids.
    items: list[ImportedItem] = []


CSV_COLUMNS = ("sku", "brand", "name", "value_type", "face_value", "min_value", "max_value", "countries", "status",
               "categories", "logo_url")


class _Record(msgspec.Struct, frozen=True):
    number: int
    values: dict[str, Any]
    problem: str | None = None


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        problem = text_problem(key, value)
        if problem:
            raise Invalid(problem)
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a JSON feed may give a numeric sku
    raise Invalid(f"{key} must be text")


def _split(record: dict[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise Invalid(f"{key} must be a list of text")
        problem = next((p for v in value if (p := text_problem(key, v))), None)
        if problem:
            raise Invalid(problem)
        parts = value
    else:
        parts = _text(record, key).split(";")
    return [part.strip() for part in parts if part.strip()]


def _countries(record: dict[str, Any]) -> list[str]:
    codes = [code.upper() for code in _split(record, "countries")]
    for code in codes:
        if not (len(code) == 2 and code.isascii() and code.isalpha()):
            raise Invalid(f'countries must be two-letter ISO codes separated by ";", got "{code[:20]}"')
    return codes


def _choice(record: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = _text(record, key).lower() or choices[0]
    if value not in choices:
        raise Invalid(f'{key} must be {" or ".join(choices)}, got "{value[:40]}"')
    return value


def _money(record: dict[str, Any], key: str, currency: str) -> Money | None:
    amount = whole_number(record.get(key), key, "cents")
    if amount is None:
        return None
    if amount < 0:
        raise Invalid(f'{key} must not be negative, got "{amount}"')
    return Money(amount=amount, currency=currency)


def _records(content: str, fmt: Format) -> Iterator[_Record]:
    if fmt == "json":
        try:
            data = msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise Invalid(f"the feed is not JSON: {exc}") from None
        except RecursionError:
            raise Invalid("the feed is nested too deep to be a list of items") from None
        if not isinstance(data, list):
            raise Invalid("a JSON feed is an array of objects")
        for number, record in enumerate(data, start=1):
            if isinstance(record, dict):
                yield _Record(number=number, values=record)
            else:
                yield _Record(number=number, values={}, problem="each item of a JSON feed must be an object")
        return
    sheet = read_sheet(content, required=("sku", "brand", "name"), known=CSV_COLUMNS)
    for row in sheet.rows:
        yield _Record(number=row.number, values=dict(row.cells), problem=row.problem)


async def import_feed(program: ProgramView, content: str, fmt: Format) -> ImportReport:
    currency = program.point_value.currency
    created = updated = 0
    errors: list[RowError] = []
    done: list[ImportedItem] = []
    for entry in _records(content, fmt):
        record = entry.values
        sku: str | None = None
        try:
            sku = _text(record, "sku") or None
            if entry.problem is not None:
                raise Invalid(entry.problem)
            if sku is None:
                raise Invalid("sku is required")
            categories = _split(record, "categories")
            brand_name = _text(record, "brand")
            logo_url = _text(record, "logo_url") or None
            if categories or logo_url:
                given = frozenset(field for field, value in (("categories", categories), ("logo_url", logo_url))
                                  if value)
                await upsert_brand(program.id, msgspec.convert(
                    {"name": brand_name, "categories": categories, "logo_url": logo_url}, BrandSpec), only=given)
            spec = msgspec.convert({
                "brand": brand_name, "name": _text(record, "name"), "sku": sku,
                "value_type": _choice(record, "value_type", ("fixed", "variable")),
                "face_value": _money(record, "face_value", currency),
                "min_value": _money(record, "min_value", currency),
                "max_value": _money(record, "max_value", currency),
                "countries": _countries(record),
                "status": _choice(record, "status", ("active", "disabled")),
            }, NewItem)
            existing = await CatalogItem.select(CatalogItem.id).where(
                CatalogItem.program_sku == f"{program.id}:{sku}").first().run()
            if existing is None:
                item_id = await create_item(program, spec)
                created += 1
                done.append(ImportedItem(row=entry.number, sku=sku, id=item_id, status="created"))
            else:
                await update_item(program.id, existing["id"], ItemChanges(
                    name=spec.name, countries=spec.countries, status=spec.status))
                face, low, high = check_values(spec, currency)
                values = {CatalogItem.face_value: face, CatalogItem.min_value: low, CatalogItem.max_value: high,
                          CatalogItem.value_type: spec.value_type, CatalogItem.updated_at: datetime.now(timezone.utc)}
                await CatalogItem.update(values).where(CatalogItem.id == existing["id"]).run()
                updated += 1
                done.append(ImportedItem(row=entry.number, sku=sku, id=existing["id"], status="updated"))
        except msgspec.ValidationError as exc:
            errors.append(RowError(row=entry.number, sku=sku, error=describe(exc)))
        except DomainError as exc:
            errors.append(RowError(row=entry.number, sku=sku, error=exc.detail))
    return ImportReport(created=created, updated=updated, errors=errors, items=done)

"""Supplier feeds: a JSON array or a CSV of items, upserted by `sku`, bad rows reported.

CSV columns (header row required): sku, brand, name, value_type (fixed|variable),
face_value, min_value, max_value (minor units), countries (ISO codes separated by `;`),
status (active|disabled), categories (`;`), logo_url. JSON: a list of objects with the same
keys (countries and categories as lists).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

import msgspec

from catalog.items import BrandSpec, ItemChanges, NewItem, check_values, create_item, update_item, upsert_brand
from catalog.tables import CatalogItem
from programs.programs import Money, ProgramView
from wallet.errors import Invalid


class RowError(msgspec.Struct, frozen=True):
    row: int
    sku: str | None
    error: str


class ImportReport(msgspec.Struct, frozen=True):
    created: int
    updated: int
    errors: list[RowError]


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").split(";") if part.strip()]


def _money(value: Any, currency: str) -> Money | None:
    if value in (None, ""):
        return None
    amount = int(value) if not isinstance(value, int) else value
    return Money(amount=amount, currency=currency)


def _records(content: str, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        try:
            data = msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise Invalid(f"the feed is not JSON: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise Invalid("a JSON feed is an array of objects")
        return data
    reader = csv.DictReader(io.StringIO(content))
    missing = [c for c in ("sku", "brand", "name") if c not in (reader.fieldnames or [])]
    if missing:
        raise Invalid(f"the CSV header must name {', '.join(missing)}")
    try:
        return list(reader)
    except csv.Error as exc:
        raise Invalid(f"unreadable CSV: {exc}") from None


async def import_feed(program: ProgramView, content: str, fmt: str) -> ImportReport:
    currency = program.point_value.currency
    created = updated = 0
    errors: list[RowError] = []
    for number, record in enumerate(_records(content, fmt), start=2 if fmt == "csv" else 1):
        sku = str(record.get("sku") or "").strip() or None
        try:
            if sku is None:
                raise Invalid("sku is required")
            categories = _split(record.get("categories"))
            brand_name = str(record.get("brand") or "").strip()
            if categories or record.get("logo_url"):
                await upsert_brand(program.id, msgspec.convert(
                    {"name": brand_name, "categories": categories, "logo_url": record.get("logo_url") or None},
                    BrandSpec))
            spec = msgspec.convert({
                "brand": brand_name, "name": str(record.get("name") or "").strip(), "sku": sku,
                "value_type": str(record.get("value_type") or "fixed").strip(),
                "face_value": _money(record.get("face_value"), currency),
                "min_value": _money(record.get("min_value"), currency),
                "max_value": _money(record.get("max_value"), currency),
                "countries": _split(record.get("countries")),
                "status": str(record.get("status") or "active").strip(),
            }, NewItem)
            existing = await CatalogItem.select(CatalogItem.id).where(
                CatalogItem.program_sku == f"{program.id}:{sku}").first().run()
            if existing is None:
                await create_item(program, spec)
                created += 1
            else:
                await update_item(program.id, existing["id"], ItemChanges(
                    name=spec.name, countries=spec.countries, status=spec.status))
                face, low, high = check_values(spec, currency)
                values = {CatalogItem.face_value: face, CatalogItem.min_value: low, CatalogItem.max_value: high,
                          CatalogItem.value_type: spec.value_type, CatalogItem.updated_at: datetime.now(timezone.utc)}
                await CatalogItem.update(values).where(CatalogItem.id == existing["id"]).run()
                updated += 1
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            errors.append(RowError(row=number, sku=sku, error=str(exc)))
        except Invalid as exc:
            errors.append(RowError(row=number, sku=sku, error=exc.detail))
    return ImportReport(created=created, updated=updated, errors=errors)

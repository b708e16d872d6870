"""How an item is named in a sentence: its brand once, then its name."""

from __future__ import annotations


def item_title(brand: str, name: str) -> str:
    """`Amazon $25` for brand Amazon and name "Amazon $25" (suppliers often repeat the brand
    in the name), `Amazon Gift Card` for brand Amazon and name "Gift Card"."""
    brand, name = brand.strip(), name.strip()
    if not brand or name.casefold().startswith(brand.casefold()):
        return name or brand
    return f"{brand} {name}" if name else brand

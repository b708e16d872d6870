"""SQL tables owned by the catalog package: brands and the items participants redeem."""

from __future__ import annotations

from piccolo.columns import BigInt, Text, Timestamptz, Varchar
from piccolo.table import Table


class Brand(Table, tablename="brands"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    program_name = Varchar(length=260, unique=True)
    logo_url = Varchar(length=1000, null=True, default=None)
    description = Text(default="")
    terms = Text(default="")
    redemption_instructions = Text(default="")
    categories = Text(default="[]")  # JSON list of strings
    partner_id = Varchar(length=40, null=True, default=None)  # routes this brand's orders
    created_at = Timestamptz()
    updated_at = Timestamptz()


class CatalogItem(Table, tablename="catalog_items"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    brand_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    # A supplier's id for the item, unique per program: the key of feed imports.
    program_sku = Varchar(length=260, unique=True)
    sku = Varchar(length=200)
    currency = Varchar(length=3)
    countries = Text(default="[]")  # JSON list of ISO 3166 alpha-2 codes; empty: everywhere
    value_type = Varchar(length=10, default="fixed")  # fixed | variable
    face_value = BigInt(null=True, default=None)  # minor units, fixed items
    min_value = BigInt(null=True, default=None)  # minor units, variable items
    max_value = BigInt(null=True, default=None)
    status = Varchar(length=20, default="active")  # active | disabled
    partner_id = Varchar(length=40, null=True, default=None)  # routes this item's orders
    search_text = Text(default="")  # lowercased brand, name, categories: for `q`
    created_at = Timestamptz()
    updated_at = Timestamptz()

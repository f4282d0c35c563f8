"""The ``catalog-import`` workflow: fetch a vendor feed, normalise it, write a description for
every product with a model, then upsert the products.

Every step's state is snapshotted (in the database, through the app's default ORM store) after
the step finishes, so a run killed in the middle of ``enrich`` resumes at ``enrich``:
``fetch`` and ``normalize`` do not run again. ``warlock_ai`` registers ``catalog_import`` by
itself (it autodiscovers ``flows.py`` in every installed app), which is what lets
``manage.py execute_run catalog-import`` and ``manage.py resume_run <run id>`` find it.

Each step body first writes a ``StepExecution`` row, so you can count which steps ran twice.

``CATALOG_IMPORT_VERSION=2`` builds version 2 of the definition, where the last step is
called ``save_products`` instead of ``upsert``: its signature differs, so a run started under
version 1 refuses to resume under version 2 until an operator decides (the demo's drift part).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction

import warlock_ai as ai

from .models import Product, StepExecution
from .writers import DescriptionWriter

FEED = Path(__file__).resolve().parent / "data" / "vendor_feed.json"
VERSION = os.environ.get("CATALOG_IMPORT_VERSION", "1")
# Version 2 renamed the last step; version 1 snapshots still say "upsert".
SAVE_STEP = "save_products" if VERSION == "2" else "upsert"


def record(ctx: Any, step: str) -> None:
    """Log that a step body started (one row per execution, retries and resumes included)."""
    StepExecution.objects.create(run_id=ctx.run_id, step=step, pid=os.getpid())


def read_feed(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def normalize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clean the feed: trim and title-case titles, upper-case SKUs, prices as "12.50" strings,
    one product per SKU (a later row for the same SKU replaces the earlier one, in place).

    Prices stay strings: the state is stored as JSON, and a ``Decimal`` is not JSON.
    """
    products: dict[str, dict[str, Any]] = {}
    for row in rows:
        sku = str(row["sku"]).strip().upper()
        words = str(row["title"]).split()
        title = " ".join(w[:1].upper() + w[1:] for w in words)
        try:
            price = Decimal(str(row["price"]).strip()).quantize(Decimal("0.01"))
        except InvalidOperation as exc:
            raise ValueError(f"{sku}: price {row['price']!r} is not a number") from exc
        products[sku] = {"sku": sku, "title": title, "price": str(price), "description": ""}
    return list(products.values())


def fetch(ctx: Any) -> None:
    record(ctx, "fetch")
    feed = read_feed(ctx.input.get("feed") or FEED)
    vendor = ctx.input["vendor_id"]
    if feed.get("vendor", vendor) != vendor:
        raise ValueError(f"the feed is for vendor {feed['vendor']!r}, not {vendor!r}")
    ctx.state["raw"] = feed["products"]
    ctx.state["raw_count"] = len(feed["products"])


def normalize(ctx: Any) -> None:
    record(ctx, "normalize")
    ctx.state["products"] = normalize_rows(ctx.state["raw"])
    # The raw feed is not needed any more: drop it so later snapshots do not carry it.
    del ctx.state["raw"]


def enrich(ctx: Any) -> None:
    record(ctx, "enrich")
    writer = DescriptionWriter()
    products = ctx.state["products"]
    total = len(products)
    for index, product in enumerate(products, start=1):
        if product.get("description"):  # idempotent: keep what an earlier attempt wrote
            print(f"enrich: {index}/{total} {product['sku']} (already written)", flush=True)
            continue
        product["description"] = writer.write(product)
        print(f"enrich: {index}/{total} {product['sku']}", flush=True)


def upsert(ctx: Any) -> None:
    record(ctx, SAVE_STEP)
    vendor = ctx.input["vendor_id"]
    products = ctx.state["products"]
    with transaction.atomic():  # an upsert, so running this step again is harmless
        for product in products:
            Product.objects.update_or_create(
                vendor_id=vendor,
                sku=product["sku"],
                defaults={
                    "title": product["title"],
                    "price": Decimal(product["price"]),
                    "description": product["description"],
                },
            )
    ctx.state["imported"] = len(products)


catalog_import = ai.workflow(
    name="catalog-import",
    version=VERSION,
    description="Fetch, normalize, enrich and upsert a vendor catalog.",
    steps=[
        ai.step("fetch", fetch),
        ai.step("normalize", normalize),
        ai.step("enrich", enrich),
        ai.step(SAVE_STEP, upsert),
    ],
)

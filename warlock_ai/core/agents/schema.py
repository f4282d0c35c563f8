"""Validate a value against a user-supplied schema, duck-typed (no schema library required)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SchemaValidationError
from .json_schema import json_schema_issues


def validate_schema(schema: Any, value: Any) -> Any:
    """Return the validated (possibly transformed) value or raise ``SchemaValidationError``.

    Accepted schemas: a JSON Schema dict (checked by ``json_schema``), a pydantic model class
    (``model_validate``; the result is dumped back to JSON-shaped data), a pydantic
    ``TypeAdapter`` (``validate_python``), an object with ``validate(value)``, or a plain
    callable ``value -> value`` that raises when invalid.
    """
    if isinstance(schema, Mapping):
        issues = json_schema_issues(schema, value)
        if issues:
            raise SchemaValidationError(
                f"output failed schema validation: {issues[0]}", issues=issues
            )
        return value
    try:
        if hasattr(schema, "model_validate"):
            model = schema.model_validate(value)
            return model.model_dump(mode="json") if hasattr(model, "model_dump") else model
        if hasattr(schema, "validate_python"):
            return schema.validate_python(value)
        if hasattr(schema, "validate"):
            return schema.validate(value)
        if callable(schema):
            return schema(value)
    except SchemaValidationError:
        raise
    except Exception as exc:
        raise SchemaValidationError(
            f"output failed schema validation: {exc}", issues=_issues(exc), cause=exc
        ) from exc
    raise SchemaValidationError(
        f"unusable schema {schema!r}: "
        "give a callable, a pydantic model or an object with validate()"
    )


def _issues(exc: Exception) -> list[Any]:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return [
                {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                for e in errors()
            ]
        except Exception:
            pass
    return [str(exc)]

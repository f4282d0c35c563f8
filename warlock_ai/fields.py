"""Model fields: ``VectorField``, an embedding that is pgvector's ``vector(n)`` where it can be."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import vector

_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class VectorField(models.Field):
    """A list of floats.

    The column is ``vector(n)`` on a PostgreSQL database with the ``vector`` extension
    installed (n from ``WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"]``, else 1536, read when
    the migration runs) and text holding a JSON array everywhere else. Python sees a list of
    floats either way; the text form ``[0.1,0.2]`` is also pgvector's input syntax, so the same
    value goes to both columns.
    """

    description = _("A vector of floats (pgvector where available)")
    empty_strings_allowed = False

    def db_type(self, connection: Any) -> str:
        if vector.pgvector_installed(connection):
            return f"vector({vector.dimensions()})"
        return connection.data_types["TextField"]

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        """Django 5.2: the value's placeholder (a cast to ``vector`` on pgvector)."""
        if vector.pgvector_installed(connection):
            return "%s::vector"
        return "%s"

    def get_placeholder_sql(
        self, value: Any, compiler: Any, connection: Any
    ) -> tuple[str, tuple[Any, ...]]:
        """Django 6.1 (which deprecates ``get_placeholder``): the placeholder and its
        parameters; an expression compiles to its own SQL, cast the same way."""
        placeholder = self.get_placeholder(value, compiler, connection)
        if hasattr(value, "as_sql"):
            sql, params = compiler.compile(value)
            return placeholder % sql, tuple(params)
        return placeholder, (value,)

    def get_prep_value(self, value: Any) -> list[float] | None:
        return to_floats(super().get_prep_value(value))

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        return None if value is None else _encoder.encode(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[float] | None:
        return to_floats(value)

    def to_python(self, value: Any) -> list[float] | None:
        try:
            return to_floats(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                _("Enter a list of numbers: %(error)s"), code="invalid", params={"error": exc}
            ) from exc

    # None for a null value, as the serializers expect (Django's own JSONField returns
    # non-strings here too); django-stubs declares ``str``.
    def value_to_string(self, obj: models.Model) -> str | None:  # type: ignore[override]
        value = self.value_from_object(obj)
        return None if value is None else _encoder.encode(to_floats(value))


def to_floats(value: Any) -> list[float] | None:
    """A list of floats from a list, a tuple, a numpy array or pgvector's text ``[1,2,3]``."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    elif hasattr(value, "tolist"):  # numpy arrays, pgvector.Vector
        value = value.tolist()
    if not isinstance(value, Iterable) or isinstance(value, (dict, str, bytes)):
        raise TypeError(f"a vector must be a list of numbers, got {type(value).__name__}")
    return [float(x) for x in value]

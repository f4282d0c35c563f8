"""A small JSON Schema checker for model outputs: ``type``, ``properties``, ``required``,
``additionalProperties`` (false or a schema), ``items``, ``enum``, ``const``, ``anyOf``/``oneOf``,
``minLength``/``maxLength``, ``minimum``/``maximum``. Enough for structured replies; use a
pydantic model as the schema for anything richer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def json_schema_issues(schema: Mapping[str, Any], value: Any, path: str = "$") -> list[str]:
    """Every way ``value`` fails ``schema``, as ``"$.a.b: expected ..."`` lines (empty: valid)."""
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [json_schema_issues(s, value, path) for s in schema[key]]
            if all(options):
                return [f"{path}: matches none of {key} ({'; '.join(o[0] for o in options)})"]
    issues = _type_issues(schema, value, path)
    if issues:
        return issues
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']!r}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: expected {schema['const']!r}"]
    if isinstance(value, dict):
        return _object_issues(schema, value, path)
    if isinstance(value, (list, tuple)) and "items" in schema:
        return [
            i
            for n, v in enumerate(value)
            for i in json_schema_issues(schema["items"], v, f"{path}[{n}]")
        ]
    return _bound_issues(schema, value, path)


def _type_issues(schema: Mapping[str, Any], value: Any, path: str) -> list[str]:
    wanted = schema.get("type")
    if wanted is None:
        return []
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    for name in names:
        kinds = _TYPES.get(name, ())
        is_bool = isinstance(value, bool)
        if isinstance(value, kinds) and not (is_bool and name in ("integer", "number")):
            return []
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return []  # JSON Schema: 3.0 is an integer
    return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]


def _object_issues(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> list[str]:
    properties = schema.get("properties") or {}
    issues = [
        f"{path}: missing required {k!r}" for k in schema.get("required", ()) if k not in value
    ]
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            issues += json_schema_issues(properties[key], item, f"{path}.{key}")
        elif extra is False:
            issues.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, Mapping):
            issues += json_schema_issues(extra, item, f"{path}.{key}")
    return issues


def _bound_issues(schema: Mapping[str, Any], value: Any, path: str) -> list[str]:
    issues = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            issues.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            issues.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            issues.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            issues.append(f"{path}: above {schema['maximum']}")
    return issues

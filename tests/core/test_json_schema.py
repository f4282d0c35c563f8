"""The small JSON Schema checker behind structured outputs."""

from warlock_ai.core.agents.json_schema import json_schema_issues

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "account"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}},
        "next": {"anyOf": [{"type": "string"}, {"type": "array"}]},
    },
    "required": ["category"],
    "additionalProperties": {"type": "string"},
}


def test_a_valid_value_has_no_issues():
    value = {"category": "billing", "priority": 3.0, "tags": ["a"], "next": ["x"], "note": "ok"}
    assert json_schema_issues(SCHEMA, value) == []


def test_each_rule_reports_its_path():
    value = {"priority": 9, "tags": ["a" * 11, 2], "next": 1, "extra": 5, "category": "x"}
    issues = json_schema_issues(SCHEMA, value)
    assert "$.category: 'x' is not one of ['billing', 'account']" in issues
    assert "$.priority: above 5" in issues
    assert "$.tags[0]: longer than 10" in issues
    assert "$.tags[1]: expected string, got int" in issues
    assert any(i.startswith("$.next: matches none of anyOf") for i in issues)
    assert "$.extra: expected string, got int" in issues
    assert json_schema_issues(SCHEMA, {}) == ["$: missing required 'category'"]


def test_booleans_are_not_numbers():
    assert json_schema_issues({"type": "integer"}, True) == ["$: expected integer, got bool"]
    assert json_schema_issues({"type": "integer"}, 2.5) == ["$: expected integer, got float"]

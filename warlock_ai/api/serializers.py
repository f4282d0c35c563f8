"""What the API reads from a request body and writes in its answers.

Bodies are read strictly, as their JSON types say: ``"force": "yes"`` or ``"reason": 7`` is
a 400 naming the field, not a value guessed at. The answers' serializers are what the
OpenAPI schema documents; they read rows as stored (a snapshot that cannot be read is shown
by its columns, never a server error).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import presentation
from ..models import VERDICTS, Checkpoint, Snapshot

# --- strict fields --------------------------------------------------------------------------


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only (DRF's also takes "yes", 1, "on", ...)."""

    default_error_messages = {"invalid": "must be true or false, got {input!r}"}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # fail() raises


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF's also turns numbers into strings)."""

    default_error_messages = {"not_string": "must be a string, got {kind}"}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_string", kind=_json_kind(data))
        return str(super().to_internal_value(data))


def _json_kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array"}.get(
        type(value), "an object" if isinstance(value, dict) else "null"
    )


class StrictDictField(serializers.DictField):
    """A JSON object only."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=_json_kind(data))
        return dict(super().to_internal_value(data))


class StrictListField(serializers.ListField):
    """A JSON array only (DRF's also takes a form's repeated keys)."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=_json_kind(data))
        return list(super().to_internal_value(data))


class StrictSerializer(serializers.Serializer):
    """A body that is a JSON object with known keys only: a misspelt key is a 400 naming it
    rather than an option silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {name: [f"unknown field; known: {known}"] for name in unknown}
                )
        return super().to_internal_value(data)


# --- request bodies -------------------------------------------------------------------------


class StartRunBody(StrictSerializer):
    flow = StrictCharField(
        max_length=255, help_text='A registered flow: its name, or "kind:name" when ambiguous.'
    )
    input = serializers.JSONField(
        required=False, allow_null=True, default=None, help_text="The run's input (any JSON)."
    )
    run_id = StrictCharField(
        required=False,
        max_length=255,
        help_text="A run id of your choosing: the same body sent again starts nothing new; "
        "another body for an existing id is a 409. Generated when left out.",
    )


class ResumeBody(StrictSerializer):
    force = StrictBooleanField(
        required=False,
        default=False,
        help_text="Resume a drifted run with the current definition (needs force_resume_snapshot).",
    )


class CancelBody(StrictSerializer):
    reason = StrictCharField(
        required=False, allow_blank=True, default="", max_length=10_000, help_text="Why."
    )


class MigrateBody(StrictSerializer):
    rename = StrictDictField(
        child=StrictCharField(max_length=255),
        required=False,
        default=dict,
        help_text="Stored step name -> current step name.",
    )
    drop = StrictListField(
        child=StrictCharField(max_length=255),
        required=False,
        default=list,
        help_text="Stored step records to drop.",
    )
    accept_signature = StrictBooleanField(
        required=False,
        default=False,
        help_text="Accept the current definition's signature, so a plain resume continues.",
    )


class SendTurnBody(StrictSerializer):
    input = serializers.JSONField(help_text="The turn's input (any JSON).")
    turn_key = StrictCharField(
        required=False,
        max_length=200,
        help_text="On a queue: what makes this turn one job (default: a hash of the input).",
    )


# --- answers ------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every refusal: the library's error code, one line, and the error's own fields."""

    code = serializers.CharField()
    message = serializers.CharField()


class LeaseSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["live", "expired", "dead", "none"])
    owner = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    blocks = serializers.BooleanField(help_text="A live worker holds the run.")


class RunSerializer(serializers.ModelSerializer):
    """A run as the list shows it."""

    flow = serializers.CharField(source="name")
    kind = serializers.CharField()
    status = serializers.CharField()
    position = serializers.SerializerMethodField(
        help_text="Its next step or iteration (null once it has none)."
    )
    definition = serializers.SerializerMethodField()
    lease = serializers.SerializerMethodField()
    unreadable = serializers.SerializerMethodField(
        help_text="Why its snapshot cannot be read (null when it can)."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Snapshot
        fields = [
            "run_id",
            "kind",
            "flow",
            "version",
            "status",
            "position",
            "next_step",
            "iteration",
            "started_at",
            "saved_at",
            "finished_at",
            "definition",
            "lease",
            "cancel_requested_at",
            "unreadable",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_position(self, row: Snapshot) -> str | None:
        """The admin's text ("extract", "iteration 2"), null once there is nothing next."""
        value = presentation.position(row)
        return None if value == "—" else value

    @extend_schema_field(serializers.ChoiceField(choices=VERDICTS))
    def get_definition(self, row: Snapshot) -> str:
        return presentation.verdict(row)

    @extend_schema_field(LeaseSerializer)
    def get_lease(self, row: Snapshot) -> dict[str, Any]:
        lease = presentation.lease_of(row)
        return {
            "state": lease.state,
            "owner": lease.owner,
            "expires_at": serializers.DateTimeField().to_representation(lease.expires_at)
            if lease.expires_at
            else None,
            "blocks": lease.blocks,
        }

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_unreadable(self, row: Snapshot) -> str | None:
        return presentation.unreadable(row)

    def get_url(self, row: Snapshot) -> str:
        return reverse("warlock_ai_api:run", args=[row.run_id])


class DriftSerializer(serializers.Serializer):
    saved_signature = serializers.CharField()
    current_signature = serializers.CharField()
    changes = serializers.ListField(
        child=serializers.CharField(), help_text="What changed, one line each."
    )


class RunDetailSerializer(RunSerializer):
    """A run with everything stored: its state, input, step records and attempts."""

    input = serializers.JSONField(allow_null=True)
    state = serializers.JSONField(
        source="full_state", help_text="The whole state, keys stored apart included."
    )
    steps = serializers.JSONField(help_text="The step records (a supervisor's iterations).")
    attempts = serializers.JSONField(help_text="Each execution of the run, oldest first.")
    error = serializers.JSONField(allow_null=True)
    usage = serializers.JSONField(allow_null=True)
    drift = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "signature",
            "cancel_reason",
            "input",
            "state",
            "steps",
            "attempts",
            "error",
            "usage",
            "drift",
        ]
        read_only_fields = fields

    @extend_schema_field(DriftSerializer(allow_null=True))
    def get_drift(self, row: Snapshot) -> dict[str, Any] | None:
        definition = presentation.definition_of(row)
        if definition is None or definition.signature == row.signature:
            return None
        lines: list[str] = []
        if presentation.unreadable(row) is None:
            diff = presentation.drift_diff(row)
            lines = diff.lines() if diff is not None else []
        return {
            "saved_signature": row.signature,
            "current_signature": definition.signature,
            "changes": lines,
        }


class CancelSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["cancelled", "requested", "pending"],
        help_text="cancelled at once (no live worker held it), requested of its worker, or "
        "an earlier request still pending.",
    )
    requested_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    worker = serializers.CharField(allow_null=True)
    within_seconds = serializers.FloatField(allow_null=True)


class ActionResultSerializer(serializers.Serializer):
    """What an action did: one line, where it went (a queued job), the run after it."""

    run_id = serializers.CharField()
    action = serializers.CharField()
    message = serializers.CharField()
    ok = serializers.BooleanField(help_text="False when the run itself ended badly.")
    job_id = serializers.CharField(allow_null=True, help_text="The django-rq job, when queued.")
    created = serializers.BooleanField(
        required=False, help_text="Starting: false when the same start was made before."
    )
    cancel = CancelSerializer(required=False, allow_null=True)
    run = RunSerializer(allow_null=True, help_text="The run as stored now (null: not yet).")


class SessionSerializer(serializers.ModelSerializer):
    """An orchestrator session: its latest turn."""

    orchestrator = serializers.CharField(source="orchestrator_name")
    turns = serializers.IntegerField(source="turn_count", help_text="Turns stored.")
    latest_turn = serializers.IntegerField(source="turn_index")
    interrupted_run = serializers.CharField(
        allow_null=True, help_text="The run id of an interrupted turn waiting to be resumed."
    )
    url = serializers.SerializerMethodField()
    turns_url = serializers.SerializerMethodField()

    class Meta:
        model = Checkpoint
        fields = [
            "orchestrator",
            "session_id",
            "turns",
            "latest_turn",
            "last_route",
            "signature",
            "version",
            "saved_at",
            "interrupted_run",
            "url",
            "turns_url",
        ]
        read_only_fields = fields

    def get_url(self, row: Checkpoint) -> str:
        return reverse("warlock_ai_api:session", args=[row.orchestrator_name, row.session_id])

    def get_turns_url(self, row: Checkpoint) -> str:
        return reverse("warlock_ai_api:turns", args=[row.orchestrator_name, row.session_id])


class TurnSerializer(serializers.ModelSerializer):
    """One stored turn of a session."""

    state = serializers.JSONField()
    last_route = serializers.JSONField(allow_null=True)

    class Meta:
        model = Checkpoint
        fields = [
            "turn_index",
            "state",
            "last_route",
            "signature",
            "version",
            "summarized_through",
            "turn_key",
            "saved_at",
        ]
        read_only_fields = fields


class TurnResultSerializer(serializers.Serializer):
    orchestrator = serializers.CharField()
    session_id = serializers.CharField()
    message = serializers.CharField()
    ok = serializers.BooleanField()
    job_id = serializers.CharField(allow_null=True)
    turn_index = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    data = serializers.JSONField(allow_null=True, help_text="The turn's answer, when it ran here.")
    error = serializers.JSONField(allow_null=True)


class NamespaceStatsSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    entries = serializers.IntegerField()
    expired = serializers.IntegerField()
    hits = serializers.IntegerField()
    with_embedding = serializers.IntegerField()


class CacheStatsSerializer(serializers.Serializer):
    entries = serializers.IntegerField()
    expired = serializers.IntegerField()
    hits = serializers.IntegerField()
    namespaces = NamespaceStatsSerializer(many=True)

"""Forms of the run actions' confirmation pages and of the sessions admin's fork."""

from __future__ import annotations

from typing import Any

from django import forms

from .. import operations
from ..core.errors import AIError

DROP = "__drop__"


class ResumeForm(forms.Form):
    """Nothing to ask: the confirmation is the POST itself."""


class CancelForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=500,
        label="Reason",
        help_text="Recorded on the run and in the admin's history.",
    )


class DiscardForm(forms.Form):
    restart = forms.BooleanField(
        required=False,
        label="Start again from scratch with the same input and run id",
        help_text="After deleting the snapshot, execute the flow again as a new run.",
    )


class MigrateForm(forms.Form):
    """Map each stored step name to a step of the current definition, or drop its record.

    The stored names come from the runs on the server, never from the POST, so a tampered
    form can only pick among the current steps and is otherwise refused.
    """

    def __init__(
        self,
        *args: Any,
        stored: list[str],
        current: list[str],
        guesses: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stored = stored
        guesses = guesses or {}
        choices = [("", "— choose —"), *((n, n) for n in current), (DROP, "— drop this record —")]
        for index, name in enumerate(stored):
            initial = name if name in current else guesses.get(name, "")
            self.fields[f"step_{index}"] = forms.ChoiceField(
                label=name, choices=choices, initial=initial
            )
        self.fields["accept_signature"] = forms.BooleanField(
            required=False,
            initial=True,
            label="Accept the current definition's signature",
            help_text="Without it the run stays drifted and needs a force-resume.",
        )

    def mapping_rows(self) -> list[tuple[str, Any]]:
        """(stored name, bound field) pairs for the mapping table."""
        return [(name, self[f"step_{i}"]) for i, name in enumerate(self.stored)]

    def renames_and_drops(self) -> tuple[dict[str, str], set[str]]:
        renames, drops = {}, set()
        for index, name in enumerate(self.stored):
            target = self.cleaned_data[f"step_{index}"]
            if target == DROP:
                drops.add(name)
            else:
                renames[name] = target
        return renames, drops

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        seen: dict[str, str] = {}
        for index, name in enumerate(self.stored):
            target = data.get(f"step_{index}")
            if not target or target == DROP:
                continue
            if target in seen:
                raise forms.ValidationError(
                    f'"{seen[target]}" and "{name}" are both mapped to "{target}"; '
                    "map each stored step to a different current step, or drop one"
                )
            seen[target] = name
        return data


class ForkForm(forms.Form):
    """Fork a session: the turn to fork from (one the session still stores) and a new id.

    The id is checked as the orchestrator checks session ids (non-empty, printable, at most
    255 characters; an iterating orchestrator's run ids must fit too) and must be unused.
    """

    turn = forms.TypedChoiceField(
        label="Fork from turn",
        coerce=int,
        help_text="The new session gets this turn and every stored turn before it.",
    )
    new_session_id = forms.CharField(
        label="New session id",
        strip=False,
        help_text="Any printable text up to 255 characters that no session of this "
        "orchestrator uses yet.",
    )

    def __init__(
        self, *args: Any, turns: list[int], orchestrator_name: str, store: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.orchestrator_name = orchestrator_name
        self.store = store
        self.fields["turn"].choices = [(turn, f"turn {turn}") for turn in turns]  # type: ignore[attr-defined]

    def clean_new_session_id(self) -> str:
        value = self.cleaned_data["new_session_id"]
        try:
            return operations.check_new_session_id(self.orchestrator_name, value, self.store)
        except AIError as exc:
            raise forms.ValidationError(exc.message) from None

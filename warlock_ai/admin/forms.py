"""Forms of the run actions' confirmation pages."""

from __future__ import annotations

from typing import Any

from django import forms

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

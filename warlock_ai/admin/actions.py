"""The five run actions: what each does, who may, when it applies. The work itself is in
``warlock_ai.operations``, shared with the commands, the API and the jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django import forms

from .. import operations, presentation
from ..operations import Outcome, runs_inline
from .forms import CancelForm, DiscardForm, MigrateForm, ResumeForm

FormT = TypeVar("FormT", bound=forms.Form)


@dataclass(frozen=True)
class RunAction(Generic[FormT]):
    name: str  # URL segment and list-action suffix
    label: str
    permission: str  # codename in the warlock_ai app
    summary: str  # what happens, on the confirmation page
    form: type[FormT]
    perform: Callable[[Any, FormT], Outcome]
    unavailable: Callable[[Any, presentation.Lease], str | None]
    confirm: bool = True  # False: the detail page's button runs it at once
    deletes: bool = False

    @property
    def perm(self) -> str:
        return f"warlock_ai.{self.permission}"


def _resume(row: Any, form: forms.Form) -> Outcome:
    return operations.start_resume(row.run_id, inline=runs_inline())


def _force_resume(row: Any, form: forms.Form) -> Outcome:
    return operations.start_resume(row.run_id, force=True, inline=runs_inline())


def _discard(row: Any, form: forms.Form) -> Outcome:
    if form.cleaned_data.get("restart"):
        return operations.restart_run(row.run_id, inline=runs_inline())
    operations.discard_run(row.run_id)
    return Outcome(f'run "{row.run_id}" discarded: its snapshot is deleted')


def _cancel(row: Any, form: forms.Form) -> Outcome:
    return operations.request_cancel(row.run_id, form.cleaned_data.get("reason") or "")


def _migrate(row: Any, form: MigrateForm) -> Outcome:
    renames, drops = form.renames_and_drops()
    has = set(operations.migratable_steps(row.to_snapshot()))
    renames = {old: new for old, new in renames.items() if old in has}
    accepted = form.cleaned_data["accept_signature"]
    migrated = operations.migrate_run(
        row.run_id, renames, accept_signature=accepted, drop=drops & has
    )
    return operations.describe_migration(row.run_id, renames, drops & has, accepted, migrated)


def _unreadable(row: Any) -> str | None:
    problem = presentation.unreadable(row)
    return f"its snapshot cannot be read ({problem})" if problem else None


def _terminal_or_unregistered(row: Any) -> str | None:
    if (problem := _unreadable(row)) is not None:
        return problem
    if row.status == "completed":
        return "the run is completed"
    if presentation.definition_of(row) is None:
        return f'flow "{row.name}" is not registered'
    return None


def _held(lease: presentation.Lease) -> str | None:
    return f"the run's lease is {lease.describe()}" if lease.blocks else None


def _resume_unavailable(row: Any, lease: presentation.Lease) -> str | None:
    reason = _terminal_or_unregistered(row) or _held(lease)
    if reason is None and presentation.verdict(row) == presentation.DRIFTED:
        return "the flow's definition changed: force-resume or migrate it"
    return reason


def _force_unavailable(row: Any, lease: presentation.Lease) -> str | None:
    return _terminal_or_unregistered(row) or _held(lease)


def _discard_unavailable(row: Any, lease: presentation.Lease) -> str | None:
    return _held(lease)


def _cancel_unavailable(row: Any, lease: presentation.Lease) -> str | None:
    if (problem := _unreadable(row)) is not None:
        return problem
    return None if row.status == "running" else f"the run is {row.status}, not running"


def _migrate_unavailable(row: Any, lease: presentation.Lease) -> str | None:
    if (problem := _unreadable(row)) is not None:
        return problem
    kind = presentation.kind_of(row)
    if not kind.migratable:
        return f"a {kind.name} run has {kind.units}, not step records to rename"
    if presentation.definition_of(row) is None:
        return f'flow "{row.name}" is not registered'
    return _held(lease)


ACTIONS: dict[str, RunAction[Any]] = {
    action.name: action
    for action in (
        RunAction(
            name="resume",
            label="Resume",
            permission="resume_snapshot",
            summary="Continue the run from its next step; completed steps do not run again. "
            "With django-rq configured it is enqueued on a worker; otherwise nothing runs "
            "here and the page gives the command to run on a server.",
            form=ResumeForm,
            perform=_resume,
            unavailable=_resume_unavailable,
            confirm=False,
        ),
        RunAction(
            name="force-resume",
            label="Force-resume",
            permission="force_resume_snapshot",
            summary="Resume WITHOUT the drift check: the run continues with the current "
            "definition even though it was started by a different one. Step records whose "
            "names no longer exist are kept but ignored. Use it only for edits you know are "
            "safe; otherwise migrate or discard.",
            form=ResumeForm,
            perform=_force_resume,
            unavailable=_force_unavailable,
        ),
        RunAction(
            name="discard",
            label="Discard",
            permission="discard_snapshot",
            summary="Delete the run's snapshot for good: its state and step records are "
            "lost. Optionally start the flow again from scratch with the same input and id "
            "(on a django-rq worker; without one, nothing is deleted and the page gives the "
            "commands to run on a server).",
            form=DiscardForm,
            perform=_discard,
            unavailable=_discard_unavailable,
            deletes=True,
        ),
        RunAction(
            name="cancel",
            label="Cancel",
            permission="cancel_snapshot",
            summary="Ask the worker running this run to stop at its next check point (a "
            "step checking ctx.cancel sees it within a third of the lease); when no live "
            "worker holds the run, it is cancelled at once. The run ends cancelled and keeps "
            "its partial state.",
            form=CancelForm,
            perform=_cancel,
            unavailable=_cancel_unavailable,
        ),
        RunAction(
            name="migrate",
            label="Migrate",
            permission="migrate_snapshot",
            summary="Rename the stored step records to the current definition's steps (or "
            "drop them) and accept its signature, so that a plain resume continues the run.",
            form=MigrateForm,
            perform=_migrate,
            unavailable=_migrate_unavailable,
        ),
    )
}

"""The run detail page's panels and the migrate form built from the stored runs."""

from __future__ import annotations

from typing import Any

from .. import operations, presentation
from .actions import ACTIONS, runs_inline
from .forms import MigrateForm


def detail_context(request: Any, row: Any, model_admin: Any) -> dict[str, Any]:
    """Everything the run page shows beyond its fields: timeline, JSON, error, drift, buttons
    (for a snapshot that cannot be read: why, its stored columns as text, and the buttons)."""
    lease = presentation.lease_of(row)
    buttons = _buttons(request, row, lease, model_admin)
    problem = presentation.unreadable(row)
    if problem is not None:
        return {
            "run": row,
            "lease": lease,
            "unreadable": problem,
            "raw_fields": presentation.raw_fields(row),
            "run_actions": buttons,
            "blocked_actions": _blocked_by_reason(buttons),
        }
    diff = presentation.drift_diff(row)
    stored_steps, current_steps = presentation.step_lists(row)
    panel = presentation.PANELS.get(row.kind)
    return {
        "run": row,
        "kind": presentation.kind_of(row),
        "lease": lease,
        "verdict": presentation.verdict(row),
        "panel_template": panel.template if panel else None,
        "records": panel.rows(row) if panel else [],
        "attempts": presentation.attempts(row),
        "input_json": presentation.pretty_json(row.input),
        "state_json": presentation.pretty_json(row.full_state()),
        "usage_json": presentation.pretty_json(row.usage) if row.usage else "",
        "run_error": row.error,
        "run_error_fields": presentation.error_fields(row.error),
        "drift_lines": diff.lines() if diff is not None else [],
        "stored_steps": stored_steps,
        "current_steps": current_steps,
        "run_actions": buttons,
        "blocked_actions": _blocked_by_reason(buttons),
        "resume_command": _resume_command(row, buttons),
        "no_worker": operations.NO_WORKER,
    }


def _resume_command(row: Any, buttons: list[dict[str, Any]]) -> str:
    """The command that resumes the run on a server, when the admin cannot start it (no
    background worker) and this user may resume it now ("--force" when only force-resume
    applies); "" otherwise."""
    if operations.run_placement(inline=runs_inline()) != operations.COMMAND:
        return ""
    open_ = {button["spec"].name for button in buttons if not button["blocked"]}
    if "resume" in open_:
        return operations.resume_command(row.run_id)
    if "force-resume" in open_:
        return operations.resume_command(row.run_id, force=True)
    return ""


def _buttons(request: Any, row: Any, lease: Any, model_admin: Any) -> list[dict[str, Any]]:
    """The actions this user may take, each with the reason it is unavailable, if any."""
    buttons = []
    for spec in ACTIONS.values():
        if not request.user.has_perm(spec.perm):
            continue
        buttons.append(
            {
                "spec": spec,
                "url": model_admin.action_url(row, spec),
                "blocked": spec.unavailable(row, lease),
            }
        )
    return buttons


def _blocked_by_reason(buttons: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """("Resume, Discard", reason) pairs: one line per reason, not per button."""
    reasons: dict[str, list[str]] = {}
    for button in buttons:
        if button["blocked"]:
            reasons.setdefault(button["blocked"], []).append(button["spec"].label)
    return [(", ".join(labels), reason) for reason, labels in reasons.items()]


def migrate_form(row: Any, data: Any) -> MigrateForm:
    """The mapping form for one run, pre-filled where names match or a rename is evident."""
    snapshot = row.to_snapshot()
    definition = presentation.definition_of(row)
    current = operations.current_step_names(definition) if definition else []
    guesses = _rename_guesses(row)
    return MigrateForm(
        data, stored=operations.migratable_steps(snapshot), current=current, guesses=guesses
    )


def bulk_migrate_form(rows: list[Any], data: Any) -> tuple[MigrateForm | None, str]:
    """One mapping for many runs of the same flow: every stored name any of them has."""
    flows = {(row.kind, row.name) for row in rows}
    if len(flows) > 1:
        names = ", ".join(sorted(f"{kind}:{name}" for kind, name in flows))
        return None, f"Migrate runs of one flow at a time; the selection mixes {names}."
    definition = presentation.definition_of(rows[0])
    if definition is None:
        return None, f'Flow "{rows[0].name}" is not registered; there is nothing to migrate to.'
    stored: list[str] = []
    guesses: dict[str, str] = {}
    for row in rows:
        stored += [n for n in operations.migratable_steps(row.to_snapshot()) if n not in stored]
        guesses.update(_rename_guesses(row))
    current = operations.current_step_names(definition)
    return MigrateForm(data, stored=stored, current=current, guesses=guesses), ""


def _rename_guesses(row: Any) -> dict[str, str]:
    """Renames the drift diff sees, by flat step name (children are recorded flat)."""
    diff = presentation.drift_diff(row)
    renamed = diff.renamed if diff is not None else []
    return {old.rsplit("/", 1)[-1]: new.rsplit("/", 1)[-1] for old, new in renamed}

"""What every warlock_ai command shares: one clear error line and exit code 1 on bad input."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..core.errors import AIError


class RunCommand(BaseCommand):
    """A command whose expected failures print ``error: <one line>`` and exit with 1."""

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        try:
            return super().execute(*args, **options)
        except (CommandError, AIError) as exc:
            message = exc.message if isinstance(exc, AIError) else str(exc)
            if options.get("traceback") or not getattr(self, "_called_from_command_line", False):
                if isinstance(exc, CommandError):
                    raise
                raise CommandError(message) from exc
            self.stderr.write(f"error: {message}")
            sys.exit(1)

    @staticmethod
    def parse_json(option: str, text: str | None, *, want_object: bool = False) -> Any:
        if text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{option} is not valid JSON: {exc}") from None
        if want_object and not isinstance(value, dict):
            raise CommandError(f"{option} must be a JSON object, got {type(value).__name__}")
        return value

    def progress_handlers(self) -> dict[str, Any]:
        """Per-call event handlers printing each step as it settles (verbosity >= 1)."""
        if self.verbosity < 1:
            return {}

        def completed(event: dict[str, Any]) -> None:
            self.stdout.write(f"  {event['step']:<24} completed  {event['duration_ms']:.0f} ms")

        def skipped(event: dict[str, Any]) -> None:
            self.stdout.write(f"  {event['step']:<24} skipped")

        def failed(event: dict[str, Any]) -> None:
            self.stdout.write(f"  {event['step']:<24} failed     {event['error'].message}")

        return {
            "workflow.step.completed": completed,
            "workflow.step.skipped": skipped,
            "workflow.step.failed": failed,
        }

    def report(self, result: Any) -> None:
        """Print the outcome; a run that did not complete exits with 1."""
        report = result.report
        line = f"run {report.run_id}: {report.status} in {report.duration_ms / 1000:.2f} s"
        if result.error is not None:
            self.stdout.write(line)
            self.stderr.write(f"error: {result.error.message}")
            if getattr(self, "_called_from_command_line", False):
                sys.exit(1)
            raise CommandError(result.error.message)
        self.stdout.write(self.style.SUCCESS(line) if report.status == "completed" else line)

"""Django models: one ``Snapshot`` row per run."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .core.snapshots import SNAPSHOT_TYPES


class Kind(models.TextChoices):
    WORKFLOW = "workflow", _("workflow")
    SUPERVISOR = "supervisor", _("supervisor")


class Status(models.TextChoices):
    RUNNING = "running", _("running")
    COMPLETED = "completed", _("completed")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    MAX_ITERATIONS = "max-iterations", _("max iterations")


TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.MAX_ITERATIONS)


class SnapshotQuerySet(models.QuerySet):
    """The shared vocabulary of the admin, the commands, the API and the jobs."""

    def running(self) -> SnapshotQuerySet:
        return self.filter(status=Status.RUNNING)

    def failed(self) -> SnapshotQuerySet:
        return self.filter(status=Status.FAILED)

    def finished(self) -> SnapshotQuerySet:
        return self.filter(status__in=TERMINAL)

    def for_flow(self, name: str, kind: str | None = None) -> SnapshotQuerySet:
        qs = self.filter(name=name)
        return qs.filter(kind=kind) if kind else qs

    def stale(self, now: Any = None) -> SnapshotQuerySet:
        """Running runs whose worker's lease expired (or that never had one): a worker died."""
        now = now or timezone.now()
        return self.running().filter(
            models.Q(lease_expires_at__isnull=True) | models.Q(lease_expires_at__lt=now)
        )


class Snapshot(models.Model):
    """The live snapshot of one run. Every save of a run replaces its row (one upsert)."""

    run_id = models.CharField(_("run id"), max_length=255, primary_key=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.WORKFLOW)
    name = models.CharField(_("flow"), max_length=200)
    signature = models.CharField(_("signature"), max_length=16)
    version = models.CharField(_("version"), max_length=100, null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    next_step = models.CharField(_("next step"), max_length=255, null=True, blank=True)
    iteration = models.IntegerField(_("iteration"), null=True, blank=True)
    input = models.JSONField(_("input"), null=True, blank=True)
    state = models.JSONField(_("state"), default=dict)
    steps = models.JSONField(_("steps"), default=dict)
    usage = models.JSONField(_("usage"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    fingerprint = models.JSONField(_("structural fingerprint"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=255, null=True, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)
    cancel_reason = models.TextField(_("cancel reason"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"))
    saved_at = models.DateTimeField(_("saved at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-saved_at"]
        indexes = [
            models.Index(fields=["saved_at"], name="warlock_snap_saved_idx"),
            models.Index(fields=["status", "saved_at"], name="warlock_snap_status_idx"),
            models.Index(fields=["name", "status"], name="warlock_snap_name_idx"),
        ]
        permissions = [
            ("resume_snapshot", "Can resume a run"),
            ("force_resume_snapshot", "Can force-resume a drifted run"),
            ("discard_snapshot", "Can discard a run"),
            ("cancel_snapshot", "Can cancel a run"),
            ("migrate_snapshot", "Can migrate a drifted run"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.run_id} ({self.status})"

    def to_snapshot(self) -> Any:
        """The engine's dataclass for this row (``WorkflowSnapshot``, ...)."""
        cls = SNAPSHOT_TYPES[self.kind]
        return cls.from_row(self)

"""A log of every model call the support agents make, written by ``recording.model_calls``.

The rows live in the same database as the snapshots, so the demo (and the tests) can count,
across processes, which calls a crashed run had paid for and which a resume made again.
"""

from django.db import models
from django.utils import timezone


class ModelCallQuerySet(models.QuerySet):
    def for_run(self, run_id: str) -> "ModelCallQuerySet":
        return self.filter(run_id=run_id)

    def finished(self) -> "ModelCallQuerySet":
        return self.filter(status=ModelCall.Status.FINISHED)

    def total_tokens(self) -> int:
        return self.aggregate(total=models.Sum("total_tokens"))["total"] or 0


class ModelCall(models.Model):
    """One call to a model: written when it starts, completed with its usage when it returns.

    A call whose process died while it was waiting for the model stays ``started``.
    """

    class Status(models.TextChoices):
        STARTED = "started", "started"
        FINISHED = "finished", "finished"
        FAILED = "failed", "failed"

    run_id = models.CharField(max_length=255, db_index=True, blank=True, default="")
    iteration = models.IntegerField(null=True, blank=True)
    agent = models.CharField(max_length=100)
    trip = models.IntegerField(default=0)
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    total_tokens = models.IntegerField(default=0)
    pid = models.IntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ModelCallQuerySet.as_manager()

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        where = f"{self.run_id} #{self.iteration}" if self.run_id else "(no run)"
        return f"{where}: {self.agent} {self.status} ({self.total_tokens} tokens)"

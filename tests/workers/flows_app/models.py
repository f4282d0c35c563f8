"""One row per execution of a step body, written when the step starts: the tests count them."""

from django.db import models


class SideEffect(models.Model):
    run_id = models.CharField(max_length=255, db_index=True)
    step = models.CharField(max_length=50)
    pid = models.IntegerField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.step} (pid {self.pid})"

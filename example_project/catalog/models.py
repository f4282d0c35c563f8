"""The catalog the import writes, and a log of every step execution (for the demo)."""

from django.db import models
from django.utils import timezone


class Product(models.Model):
    """One vendor product, written by the ``upsert`` step of ``catalog-import``."""

    vendor_id = models.CharField(max_length=100)
    sku = models.CharField(max_length=100)
    title = models.CharField(max_length=300)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    description = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor_id", "sku"]
        constraints = [
            models.UniqueConstraint(fields=["vendor_id", "sku"], name="catalog_product_vendor_sku")
        ]

    def __str__(self) -> str:
        return f"{self.vendor_id}/{self.sku} {self.title}"


class StepExecution(models.Model):
    """One row per execution of a step body, written by the step itself when it starts.

    It lets the demo (and the tests) count exactly which steps ran again after a crash.
    """

    run_id = models.CharField(max_length=255, db_index=True)
    step = models.CharField(max_length=100)
    pid = models.IntegerField()
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.step} (pid {self.pid})"

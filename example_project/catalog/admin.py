from django.contrib import admin

from .models import Product, StepExecution


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "vendor_id", "title", "price", "updated_at"]
    list_filter = ["vendor_id"]
    search_fields = ["sku", "title", "description"]


@admin.register(StepExecution)
class StepExecutionAdmin(admin.ModelAdmin):
    list_display = ["run_id", "step", "pid", "started_at"]
    list_filter = ["step"]
    search_fields = ["run_id"]

from django.apps import AppConfig


class WorkerFlowsConfig(AppConfig):
    name = "tests.workers.flows_app"
    label = "worker_flows"
    verbose_name = "Flows of the rq worker tests"
    default_auto_field = "django.db.models.BigAutoField"

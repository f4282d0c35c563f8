from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WarlockAIConfig(AppConfig):
    name = "warlock_ai"
    label = "warlock_ai"
    verbose_name = _("Durable AI runs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db import connections

        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import warlock_settings
        from .core.runs import config, effects
        from .registry import autodiscover
        from .stores.handler import get_cache_driver, get_checkpoint_store, get_snapshot_store

        config.register_fallback("default_snapshot_store", get_snapshot_store)
        config.register_fallback("default_checkpoint_store", get_checkpoint_store)
        config.register_fallback("default_store", get_cache_driver)
        if connections.close_all not in effects.worker_thread_exit_hooks:
            effects.worker_thread_exit_hooks.append(connections.close_all)
        autodiscover(warlock_settings.FLOW_MODULES)

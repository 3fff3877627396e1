from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InteropConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "interop"
    verbose_name = _("Rosters, exports and catalogue maintenance")

    def ready(self) -> None:
        from interop import tasks  # noqa: F401 - registers the Celery tasks services queue by name

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EnrollmentConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "enrollment"
    verbose_name = _("Enrollment")

    def ready(self) -> None:
        from enrollment import (
            reference_cache,
            tasks,  # noqa: F401 - registers the Celery tasks services queue by name
        )
        from enrollment.services import api_tokens

        # A password change or a deactivation revokes the user's API tokens, whichever path saved it.
        api_tokens.connect_signals()
        # Every process drops its copy of regions, policies, the catalogue and institutions when one changes.
        reference_cache.connect_signals()

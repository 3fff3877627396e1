from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NhsaConfig(AppConfig):
    """The national healthcare security administration platform link (docs/platform.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "nhsa"
    verbose_name = _("National medical-insurance platform link")

    def ready(self) -> None:
        # The outbox (docs/platform.md, "Outbox guarantees"): enrollment calls these without importing nhsa.
        from enrollment import selectors as enrollment_selectors
        from enrollment import services as enrollment_services
        from nhsa import tasks  # noqa: F401 - registers the Celery tasks services queue by name

        if _on_transition not in enrollment_services.TRANSITION_HOOKS:
            enrollment_services.TRANSITION_HOOKS.append(_on_transition)
        if _panel not in enrollment_selectors.APPLICATION_PANELS:
            enrollment_selectors.APPLICATION_PANELS.append(_panel)
        if ("platform", _platform_state) not in enrollment_selectors.APPLICATION_EXTRAS:
            enrollment_selectors.APPLICATION_EXTRAS.append(("platform", _platform_state))
        if _report_panel not in enrollment_selectors.REPORT_PANELS:
            enrollment_selectors.REPORT_PANELS.append(_report_panel)


def _on_transition(**kwargs: Any) -> None:
    from nhsa import services

    services.on_transition(**kwargs)


def _panel(request: Any, application: Any) -> Any:
    from nhsa import selectors

    return selectors.application_panel(request, application)


def _platform_state(application: Any) -> Any:
    from nhsa import selectors

    return selectors.platform_state_json(application)


def _report_panel(request: Any) -> Any:
    from nhsa import selectors

    return selectors.report_panel(request)

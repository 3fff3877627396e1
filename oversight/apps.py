from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OversightConfig(AppConfig):
    """Sample re-checks of approvals (抽查复核) and public notices of approved lists (公示): docs/reviews.md."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "oversight"
    verbose_name = _("Oversight: re-checks and public notices")

    def ready(self) -> None:
        # enrollment's pages show these without importing oversight (enrollment.selectors registries).
        from enrollment import selectors as enrollment_selectors

        if _application_panel not in enrollment_selectors.APPLICATION_PANELS:
            enrollment_selectors.APPLICATION_PANELS.append(_application_panel)
        if _report_panel not in enrollment_selectors.REPORT_PANELS:
            enrollment_selectors.REPORT_PANELS.append(_report_panel)


def _application_panel(request: Any, application: Any) -> Any:
    from oversight import selectors

    return selectors.application_panel(request, application)


def _report_panel(request: Any) -> Any:
    from oversight import selectors

    return selectors.report_panel(request)

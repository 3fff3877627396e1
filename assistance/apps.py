from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AssistanceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "assistance"
    verbose_name = _("costs and medical assistance")

    def ready(self) -> None:
        # Registers the tasks that services queue by name (kernel.task_queue.enqueue).
        from assistance import tasks  # noqa: F401

        # Retroactive assistance follows the recognition of a support category (enrollment.services.person_status).
        from assistance.hooks import on_categories_recorded
        from enrollment.services import person_status

        if on_categories_recorded not in person_status.CATEGORY_RECORDED_HOOKS:
            person_status.CATEGORY_RECORDED_HOOKS.append(on_categories_recorded)
        # A section of the reports page (charts and tables), without enrollment importing this app.
        from assistance.reports import report_panel
        from enrollment import selectors as enrollment_selectors

        if report_panel not in enrollment_selectors.REPORT_PANELS:
            enrollment_selectors.REPORT_PANELS.append(report_panel)

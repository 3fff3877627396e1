from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"
    verbose_name = _("Reviews")

    def ready(self) -> None:
        from enrollment import forms as enrollment_forms
        from enrollment import policies, services
        from enrollment import selectors as enrollment_selectors
        from enrollment.templatetags import enrollment_web
        from reviews import forms
        from reviews.policies import immediate_action_check
        from reviews.services import (
            application_approve_immediately,
            application_reject_immediately,
            application_return_immediately,
            review_items_close_for,
        )

        if review_items_close_for not in services.APPLICATION_CLOSED_HOOKS:
            services.APPLICATION_CLOSED_HOOKS.append(review_items_close_for)
        if _on_transition not in services.TRANSITION_HOOKS:
            services.TRANSITION_HOOKS.append(_on_transition)
        services.APPLICATION_ACTION_SERVICES["approve_immediately"] = application_approve_immediately
        # 即时办结: the page lists approve / reject / return with the rule the services apply (reviews.policies).
        policies.ACTION_CHECKS["approve_immediately"] = immediate_action_check("approve_immediately")
        # The working lists' "claimed by" and deadline filters and "due date" sort (enrollment.list_selectors).
        from enrollment import list_selectors
        from reviews.list_filters import DUE_ORDERING, assignee_filters, deadline_filters

        for hook in (assignee_filters, deadline_filters):
            if hook not in list_selectors.LIST_FILTERS:
                list_selectors.LIST_FILTERS.append(hook)
        if DUE_ORDERING not in list_selectors.LIST_ORDERINGS:
            list_selectors.LIST_ORDERINGS.append(DUE_ORDERING)
        # Immediate mode's reject and return (补正): the page lists them with the services' own rule.
        services.APPLICATION_ACTION_SERVICES["reject_immediately"] = application_reject_immediately
        services.APPLICATION_ACTION_SERVICES["return_immediately"] = application_return_immediately
        policies.ACTION_CHECKS["reject_immediately"] = immediate_action_check("reject_immediately")
        policies.ACTION_CHECKS["return_immediately"] = immediate_action_check("return_immediately")
        enrollment_forms.ACTION_FORMS["reject_immediately"] = forms.ImmediateRejectForm
        enrollment_forms.ACTION_FORMS["return_immediately"] = forms.ImmediateReturnForm
        enrollment_web.ACTION_LABELS.update(
            {
                "reject_immediately": _("Reject now (即时办结)"),
                "return_immediately": _("Return for supplements (补正)"),
            }
        )
        enrollment_web.TRANSITION_LABELS.update(
            {
                "reject_immediately": _("rejected on the spot (即时办结)"),
                "return_immediately": _("returned for supplements (补正) on the spot"),
                "supplement_reminder": _("reminded to answer the 补正 request"),
                "escalate": _("escalated: past the stage's due date"),
            }
        )
        if _panel not in enrollment_selectors.APPLICATION_PANELS:
            enrollment_selectors.APPLICATION_PANELS.append(_panel)
        if ("deadline", _deadline) not in enrollment_selectors.APPLICATION_EXTRAS:
            enrollment_selectors.APPLICATION_EXTRAS.append(("deadline", _deadline))
        if _report_panel not in enrollment_selectors.REPORT_PANELS:
            enrollment_selectors.REPORT_PANELS.append(_report_panel)
        # Audit rows name their batch by id; the timeline shows its label.
        from reviews.selectors import batch_labels

        if batch_labels not in enrollment_selectors.BATCH_LABELS:
            enrollment_selectors.BATCH_LABELS.append(batch_labels)


def _on_transition(**kwargs: Any) -> None:
    from reviews.services import supplements

    supplements.on_transition(**kwargs)


def _panel(request: Any, application: Any) -> Any:
    from reviews import panels

    return panels.application_panel(request, application)


def _deadline(application: Any) -> Any:
    from reviews import panels

    return panels.application_extra(application)


def _report_panel(request: Any) -> Any:
    from reviews import panels

    return panels.report_panel(request)

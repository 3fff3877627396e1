"""Reads of the platform link, scoped to the viewer (docs/platform.md, "Where to see the platform state")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from kernel import roles
from nhsa.client import platform_enabled
from nhsa.models import (
    FilingState,
    MessageKind,
    MessageState,
    PlatformDifference,
    PlatformFiling,
    PlatformMessage,
    PlatformReconciliation,
)


@dataclass(frozen=True)
class PlatformState:
    """What the application page and the API say about the platform: one of the ``status`` values below."""

    status: str  # not_sent | queued | filed | cancelled | held | failed
    label: str
    serial: str = ""
    filed_at: Any = None
    cancelled_at: Any = None
    reason: str = ""
    next_attempt_at: Any = None
    message_id: int | None = None
    msgid: str = ""

    def as_dict(self) -> dict[str, Any]:
        def iso(value: Any) -> str | None:
            return value.isoformat() if value else None

        return {
            "status": self.status,
            "label": self.label,
            "serial": self.serial or None,
            "filed_at": iso(self.filed_at),
            "cancelled_at": iso(self.cancelled_at),
            "reason": self.reason or None,
            "next_attempt_at": iso(self.next_attempt_at),
            "msgid": self.msgid or None,
        }


def platform_state_for(application_id: int) -> PlatformState:
    """The platform state of one application (the caller has already checked that the viewer sees it)."""
    filing = PlatformFiling.objects.filter(application_id=application_id).first()
    latest = PlatformMessage.objects.filter(application_id=application_id).order_by("-pk").first()
    base: dict[str, Any] = {}
    if filing is not None:
        base = {"serial": filing.trt_dcla_detl_sn, "filed_at": filing.filed_at, "cancelled_at": filing.cancelled_at}
    if latest is not None:
        base.update(message_id=latest.pk, msgid=latest.msgid)
        if latest.state == MessageState.HELD:
            return PlatformState("held", _("held for an officer"), reason=latest.held_reason, **base)
        if latest.state == MessageState.FAILED:
            reason = latest.answer_message or latest.last_error
            return PlatformState("failed", _("refused or failed"), reason=reason, **base)
        if latest.state in (MessageState.PENDING, MessageState.SENDING):
            label = _("cancellation queued") if latest.kind == MessageKind.CANCEL else _("filing queued")
            return PlatformState(
                "queued", label, reason=latest.last_error, next_attempt_at=latest.next_attempt_at, **base
            )
    if filing is not None:
        if filing.state == FilingState.CANCELLED:
            return PlatformState("cancelled", _("filing cancelled on the platform"), **base)
        return PlatformState("filed", _("filed on the platform"), **base)
    return PlatformState("not_sent", _("not sent to the platform"), **base)


def application_panel(request: Any, application: Any) -> dict[str, Any] | None:
    """enrollment.selectors.APPLICATION_PANELS: the platform card on the application page."""
    if not platform_enabled():
        return None
    return {"template": "nhsa/_application_panel.html", "platform": platform_state_for(application.pk)}


def platform_state_json(application: Any) -> dict[str, Any] | None:
    """enrollment.selectors.APPLICATION_EXTRAS: ``platform`` of the API detail; null while the link is off."""
    if not platform_enabled():
        return None
    return platform_state_for(application.pk).as_dict()


def may_handle(user: roles.AnyUser) -> bool:
    return roles.has_any_role(user, roles.CENTER_OFFICER, roles.ADMIN)


def messages_needing_officer(user: roles.AnyUser) -> QuerySet[PlatformMessage]:
    """Held and failed messages of the applications the officer sees."""
    if not may_handle(user):
        return PlatformMessage.objects.none()
    visible = enrollment_selectors.applications_visible_to(user).values("pk")
    return (
        PlatformMessage.objects.filter(state__in=(MessageState.HELD, MessageState.FAILED), application_id__in=visible)
        .select_related("application", "application__person", "application__disease")
        .order_by("-updated_at", "-pk")
    )


def message_visible_to(user: roles.AnyUser, message_id: int) -> PlatformMessage | None:
    if not may_handle(user):
        return None
    visible = enrollment_selectors.applications_visible_to(user).values("pk")
    return PlatformMessage.objects.filter(pk=message_id, application_id__in=visible).first()


def outbox_counts(user: roles.AnyUser) -> dict[str, int]:
    """Per-state counts of the viewer's messages (reports page)."""
    if not may_handle(user):
        return {}
    visible = enrollment_selectors.applications_visible_to(user).values("pk")
    rows = PlatformMessage.objects.filter(application_id__in=visible).values("state").annotate(n=Count("pk"))
    return {row["state"]: row["n"] for row in rows}


def reconciliations_visible_to(user: roles.AnyUser) -> QuerySet[PlatformReconciliation]:
    if not may_handle(user):
        return PlatformReconciliation.objects.none()
    queryset = PlatformReconciliation.objects.select_related("region")
    if roles.ADMIN in roles.role_names(user):
        return queryset
    region = enrollment_selectors.user_region(user)
    if region is None:
        return queryset.none()
    # Runs are per province: the officer's own province's.
    return queryset.filter(region__code=region.province_code)


def differences_of(run: PlatformReconciliation, user: roles.AnyUser) -> QuerySet[PlatformDifference]:
    """The run's differences; an officer sees those of the applications of their institution."""
    queryset = run.differences.select_related("application", "person", "resolved_by").order_by("id")
    if roles.ADMIN in roles.role_names(user):
        return queryset
    return queryset.filter(application_id__in=enrollment_selectors.applications_visible_to(user).values("pk"))


def difference_visible_to(user: roles.AnyUser, difference_id: int) -> PlatformDifference | None:
    runs = reconciliations_visible_to(user).values("pk")
    queryset = PlatformDifference.objects.filter(pk=difference_id, reconciliation_id__in=runs)
    if roles.ADMIN not in roles.role_names(user):
        queryset = queryset.filter(application_id__in=enrollment_selectors.applications_visible_to(user).values("pk"))
    return queryset.first()


def report_panel(request: Any) -> dict[str, Any] | None:
    """enrollment.selectors.REPORT_PANELS: platform message counts and open differences (two grouped queries)."""
    counts = outbox_counts(request.user)
    if not counts and not platform_enabled():
        return None
    runs = reconciliations_visible_to(request.user).values("pk")
    open_differences = PlatformDifference.objects.filter(reconciliation_id__in=runs, resolution="").count()
    return {
        "template": "nhsa/_report_panel.html",
        "counts": [(state.label, counts.get(state.value, 0)) for state in MessageState],
        "open_differences": open_differences,
    }

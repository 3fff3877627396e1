"""The reviews app's additions to the working lists: filter applications by the reviewer holding the claim or by
the stage deadline, and sort them by the due date of their open review item."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kernel import roles
from reviews import selectors
from reviews.models import Outcome, ReviewItem


def _filter_assignee(queryset: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
    held = ReviewItem.objects.filter(
        application=OuterRef("pk"),
        claimed_by=value,
        outcome=Outcome.PENDING,
        lease_expires_at__gt=timezone.now(),
    )
    return queryset.filter(Exists(held))


def assignee_filters(user: roles.AnyUser) -> dict[str, django_filters.Filter]:
    """For reviewers and administrators: "held by" — the reviewers of the viewer's regions."""
    if not roles.has_any_role(user, roles.REVIEWER, roles.ADMIN):
        return {}
    reviewers = get_user_model().objects.filter(groups__name=roles.REVIEWER, is_active=True)
    region_ids = selectors.reviewer_region_ids(user)
    if region_ids is not None:
        reviewers = reviewers.filter(profile__region_id__in=region_ids)
    return {
        "assignee": django_filters.ModelChoiceFilter(
            label=_("claimed by"),
            queryset=reviewers.order_by("username").distinct(),
            to_field_name="username",
            method=_filter_assignee,
            empty_label=_("anyone or no one"),
        )
    }


OVERDUE = "overdue"
DUE_WITHIN_WEEK = "due_7"


def _filter_deadline(queryset: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
    """Applications with an undecided review item past its stage due date, or due in the next 7 days."""
    today = timezone.localdate()
    pending = ReviewItem.objects.filter(application=OuterRef("pk"), outcome=Outcome.PENDING, due_on__isnull=False)
    if value == OVERDUE:
        pending = pending.filter(due_on__lt=today)
    elif value == DUE_WITHIN_WEEK:
        pending = pending.filter(due_on__gte=today, due_on__lte=today + dt.timedelta(days=7))
    else:
        return queryset
    return queryset.filter(Exists(pending))


def deadline_filters(user: roles.AnyUser) -> dict[str, django_filters.Filter]:
    """For every viewer: the stage deadline of the application's open review item."""
    return {
        "deadline": django_filters.ChoiceFilter(
            label=_("deadline"),
            choices=[(OVERDUE, _("past its stage deadline")), (DUE_WITHIN_WEEK, _("due within 7 days"))],
            method=_filter_deadline,
            empty_label=_("any"),
        )
    }


def _annotate_due_on(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``review_due_on``: the stage due date of the application's open (pending) review item, else NULL."""
    open_item = ReviewItem.objects.filter(application=OuterRef("pk"), outcome=Outcome.PENDING).values("due_on")[:1]
    return queryset.annotate(review_due_on=Subquery(open_item))


# enrollment.list_selectors.LIST_ORDERINGS: sort by the open review item's due date; applications without one
# (not in review, or no time limit for the stage) come last both ways.
DUE_ORDERING = ("due", _("due date"), "review_due_on", _annotate_due_on)

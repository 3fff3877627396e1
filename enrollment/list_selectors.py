"""Working lists: the application list's filters, sort keys, saved views and export rows (reads only).

The list is always narrowed from the viewer's scope (``selectors.applications_visible_to``): the filter set
below receives that queryset and can only take rows away. Every filter is a plain GET parameter, so a
filtered, sorted page is a link a clerk can bookmark or send to a colleague — except a search by name or
身份证号, which never goes into a URL (``views.application_list`` turns it into a short-lived search token
kept in the user's session).

Apps above enrollment add filters and sort keys through ``LIST_FILTERS`` and ``LIST_ORDERINGS`` (registered in
their AppConfig.ready()), e.g. the reviews app's "assignee" (the reviewer holding the claim) and its "due" sort key
(the due date of the open review item, an annotation added only when that sort is asked for).

The renewal worklist (``RenewalListFilter``) is the same machinery over a narrower scope: the covering
enrollments the viewer sees whose validity ends soon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import django_filters
from django import forms
from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import DateRangeWidget

from enrollment import selectors
from enrollment.models import (
    Application,
    ApplicationKind,
    Disease,
    Institution,
    Region,
    SavedView,
    State,
    mask_id_number,
)
from kernel import roles

# LIST_FILTERS: hook(user) -> {name: django_filters.Filter} or {}; the filters an app above adds for this viewer.
LIST_FILTERS: list[Callable[[Any], dict[str, django_filters.Filter]]] = []
# LIST_ORDERINGS: (key, label, field) or (key, label, field, annotate) an app above adds to the whitelisted sort
# keys. ``annotate(queryset) -> queryset`` adds ``field`` as an annotation, only when the list is sorted by it; such
# a key sorts rows without a value last in both directions.
LIST_ORDERINGS: list[tuple[Any, ...]] = []

# The whitelisted sort keys of the list: key in the URL → field. Anything else in ``o`` is ignored.
ORDERINGS: tuple[tuple[str, Any, str], ...] = (
    ("id", _("number"), "id"),
    ("filed", _("filed at"), "filed_at"),
    ("diagnosed", _("diagnosis date"), "diagnosis_date"),
    ("decided", _("decided at"), "decided_at"),
    ("valid_until", _("valid until"), "valid_until"),
    ("state", _("state"), "state"),
    ("disease", _("disease"), "disease__code"),
)
# The renewal worklist's sort keys (its default: the soonest end first).
RENEWAL_ORDERINGS: tuple[tuple[str, Any, str], ...] = (
    ("valid_until", _("valid until"), "valid_until"),
    ("id", _("number"), "id"),
    ("disease", _("disease"), "disease__code"),
    ("state", _("state"), "state"),
)
LIST_PAGE_SIZE = 50
# The largest export one request may write: beyond that, narrow the filters.
EXPORT_MAX_ROWS = 20000


class _DateRange(DateRangeWidget):
    """Two date pickers, ``<name>_after`` and ``<name>_before``."""

    def __init__(self) -> None:
        super().__init__(attrs={"type": "date"})


def _date_range(field: str, label: Any) -> django_filters.DateFromToRangeFilter:
    return django_filters.DateFromToRangeFilter(field_name=field, label=label, widget=_DateRange())


Annotate = Callable[[QuerySet[Any]], QuerySet[Any]]


def _sort_keys(orderings: Sequence[tuple[Any, ...]]) -> list[tuple[str, Any, str, Annotate | None]]:
    """Registry rows as (key, label, field, annotate or None)."""
    return [(row[0], row[1], row[2], row[3] if len(row) > 3 else None) for row in orderings]


class ListOrderingFilter(django_filters.OrderingFilter):
    """The whitelisted sort keys. A key that needs an annotation gets it only when the list is sorted by it,
    and sorts rows without a value last in both directions."""

    def __init__(self, *args: Any, annotations: dict[str, Annotate], **kwargs: Any) -> None:
        self.annotations = annotations
        super().__init__(*args, **kwargs)

    def _field_name(self, param: str) -> str:
        key = param[1:] if param.startswith("-") else param
        return str(self.param_map.get(key, key))

    def get_ordering_value(self, param: str) -> Any:
        field = self._field_name(param)
        if field in self.annotations:
            return F(field).desc(nulls_last=True) if param.startswith("-") else F(field).asc(nulls_last=True)
        return super().get_ordering_value(param)

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        for param in value or ():
            annotate = self.annotations.get(self._field_name(param)) if param else None
            if annotate is not None:
                qs = annotate(qs)
        return super().filter(qs, value)


class ApplicationListFilter(django_filters.FilterSet):
    """The application list's filters. ``queryset`` must already be the viewer's scope."""

    state = django_filters.MultipleChoiceFilter(
        label=_("state"), choices=State.choices, widget=forms.CheckboxSelectMultiple
    )
    kind = django_filters.ChoiceFilter(label=_("kind"), choices=ApplicationKind.choices, empty_label=_("all kinds"))
    disease = django_filters.ModelChoiceFilter(
        label=_("disease"), queryset=Disease.objects.none(), to_field_name="code", empty_label=_("all diseases")
    )
    institution = django_filters.ModelChoiceFilter(
        label=_("institution (filing or treating)"),
        queryset=Institution.objects.none(),
        to_field_name="code",
        method="filter_institution",
        empty_label=_("all institutions"),
    )
    region = django_filters.ModelChoiceFilter(
        label=_("insured region (and below)"),
        queryset=Region.objects.none(),
        to_field_name="code",
        method="filter_region",
        empty_label=_("all regions"),
    )
    filed = _date_range("filed_at", _("filed between"))
    diagnosed = _date_range("diagnosis_date", _("diagnosed between"))
    decided = _date_range("decided_at", _("decided between"))
    valid_until = _date_range("valid_until", _("valid until between"))

    class Meta:
        model = Application
        fields: list[str] = []

    @classmethod
    def sort_keys(cls) -> list[tuple[str, Any, str, Annotate | None]]:
        return _sort_keys([*ORDERINGS, *LIST_ORDERINGS])

    def added_filters(self, user: roles.AnyUser) -> dict[str, django_filters.Filter]:
        added: dict[str, django_filters.Filter] = {}
        for hook in LIST_FILTERS:
            added.update(hook(user))
        return added

    def __init__(self, data: Any = None, *, queryset: QuerySet[Application], user: roles.AnyUser) -> None:
        super().__init__(data, queryset=queryset)
        self.user = user
        self.filters.update(self.added_filters(user))
        orderings = self.sort_keys()
        self.filters["o"] = ListOrderingFilter(
            label=_("sort by"),
            fields=tuple((field, key) for key, _label, field, _annotate in orderings),
            field_labels={field: label for _key, label, field, _annotate in orderings},
            annotations={field: annotate for _key, _label, field, annotate in orderings if annotate is not None},
        )
        for added in self.filters.values():
            added.model = queryset.model
            added.parent = self
        # Only what occurs in the viewer's scope is offered (a clinic does not pick from every hospital).
        scope = queryset.order_by()
        self.filters["disease"].queryset = Disease.objects.filter(pk__in=scope.values("disease")).order_by("code")
        self.filters["institution"].queryset = Institution.objects.filter(
            Q(pk__in=scope.values("filing_institution")) | Q(pk__in=scope.values("treating_institution"))
        ).order_by("code")
        insured = scope.values("person__insured_region")
        self.filters["region"].queryset = (
            Region.objects.filter(
                Q(pk__in=insured) | Q(children__pk__in=insured) | Q(children__children__pk__in=insured)
            )
            .distinct()
            .order_by("code")
        )

    def filter_institution(self, queryset: QuerySet[Application], name: str, value: Institution) -> QuerySet:
        return queryset.filter(Q(filing_institution=value) | Q(treating_institution=value))

    def filter_region(self, queryset: QuerySet[Application], name: str, value: Region) -> QuerySet:
        return queryset.filter(person__insured_region_id__in=selectors.region_and_descendant_ids(value.pk))


class RenewalListFilter(ApplicationListFilter):
    """The renewal worklist's filters: disease, institution, region and the end of validity; ``queryset`` must be
    the viewer's renewal candidates (``selectors.renewal_candidates``)."""

    # None drops an inherited filter (django-filter): the list's state, kind and other dates are not this page's.
    state = None
    kind = None
    filed = None
    diagnosed = None
    decided = None

    @classmethod
    def sort_keys(cls) -> list[tuple[str, Any, str, Annotate | None]]:
        return _sort_keys(RENEWAL_ORDERINGS)

    def added_filters(self, user: roles.AnyUser) -> dict[str, django_filters.Filter]:
        return {}


def renewal_list_filter(user: roles.AnyUser, data: Any, *, within_days: int) -> RenewalListFilter:
    """The renewal worklist's filter set, bound to the GET parameters ``data``."""
    return RenewalListFilter(
        data or None, queryset=selectors.renewal_candidates(user, within_days=within_days), user=user
    )


def renewal_list_rows(filterset: RenewalListFilter) -> QuerySet[Application]:
    """The filtered, sorted renewal worklist, each row with ``pending_renewal`` and ``reminders_sent``."""
    queryset = selectors.with_renewal_flags(filterset.qs)
    if not queryset.query.order_by:
        return queryset.order_by("valid_until", "id")
    return queryset.order_by(*queryset.query.order_by, "id")


def application_list_filter(user: roles.AnyUser, data: Any) -> ApplicationListFilter:
    """The filter set of the viewer's list, bound to the GET parameters ``data``."""
    return ApplicationListFilter(data or None, queryset=selectors.applications_visible_to(user), user=user)


def application_list_rows(filterset: ApplicationListFilter, *, text: str = "") -> QuerySet[Application]:
    """The filtered, sorted rows; ``text`` is a whole ID number or part of a name (from the search token)."""
    queryset = selectors.applications_search(filterset.qs, text=text)
    if not queryset.query.order_by:
        queryset = queryset.order_by("-filed_at", "-id")
    else:
        queryset = queryset.order_by(*queryset.query.order_by, "-id")
    return queryset


def current_ordering(filterset: ApplicationListFilter) -> str:
    """The sort key in use ("filed", "-filed", …) or "" for the default."""
    data = filterset.data or {}
    value = data.get("o", "") if hasattr(data, "get") else ""
    keys = {key for key, _label, _field, _annotate in filterset.sort_keys()}
    return value if value.lstrip("-") in keys else ""


def sort_columns(
    filterset: type[ApplicationListFilter] | ApplicationListFilter = ApplicationListFilter,
) -> list[tuple[str, Any]]:
    return [(key, label) for key, label, _field, _annotate in filterset.sort_keys()]


# ---------------------------------------------------------------------------
# Saved views
# ---------------------------------------------------------------------------


def saved_views_of(user: roles.Actor, page: str) -> QuerySet[SavedView]:
    """The viewer's own saved views of a list page (nobody sees another user's)."""
    return SavedView.objects.filter(user=user, page=page, deleted_at__isnull=True).order_by("name", "id")


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def export_header() -> list[str]:
    return [
        str(label)
        for label in (
            _("number"),
            _("name"),
            _("ID number"),
            _("disease code"),
            _("disease"),
            _("kind"),
            _("state"),
            _("filing institution"),
            _("treating institution"),
            _("filed at"),
            _("diagnosis date"),
            _("decided at"),
            _("valid from"),
            _("valid until"),
        )
    ]


def _date(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        from django.utils import timezone

        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def export_chunks(
    user: roles.AnyUser, queryset: QuerySet[Application], *, full_id_numbers: bool, chunk_size: int = 1000
) -> Iterator[list[tuple[int | None, Sequence[Any]]]]:
    """Rows of the export, chunk by chunk, each as (person id if its full ID number is in it, row).

    A full ID number is written only when asked for and only where the viewer may see it on the application
    page too (``selectors.may_see_full_id_number``); every other row has it masked.
    """
    rows = queryset[:EXPORT_MAX_ROWS]
    chunk: list[tuple[int | None, Sequence[Any]]] = []
    for application in rows.iterator(chunk_size=chunk_size):
        full = full_id_numbers and selectors.may_see_full_id_number(user, application)
        person = application.person
        chunk.append(
            (
                person.pk if full else None,
                [
                    application.pk,
                    person.name,
                    person.id_number if full else mask_id_number(person.id_number),
                    application.disease.code,
                    application.disease.name,
                    application.get_kind_display(),
                    application.get_state_display(),
                    application.filing_institution.name,
                    application.treating_institution.name,
                    _date(application.filed_at),
                    _date(application.diagnosis_date),
                    _date(application.decided_at),
                    _date(application.valid_from),
                    _date(application.valid_until),
                ],
            )
        )
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

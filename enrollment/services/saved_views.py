"""Saved views of the working lists: a user keeps a named filter set of a list page for themselves.

The row is its own audit record: who saved which filters under which name and when (``created_at``), and
when it was removed (``deleted_at``: rows are never deleted). Saving under a name already used replaces
the older view (stamped deleted, a new row written). A view's query never carries a name or ID number:
the search token is dropped and only the whitelisted list parameters are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import SavedView
from kernel import roles
from kernel.errors import InvalidInput
from kernel.input_guard import field_max_length

logger = logging.getLogger(__name__)

SAVED_VIEW_PAGES = ("applications",)
SAVED_VIEWS_PER_PAGE = 30
# Parameters that never go into a saved view: the search token (names, ID numbers) and the page number.
NEVER_SAVED = frozenset({"s", "page", "q", "id_number", "csrfmiddlewaretoken"})


def _clean_query(query: str, allowed: Iterable[str]) -> str:
    allowed = set(allowed)
    data = QueryDict(query or "", mutable=True)
    kept = QueryDict(mutable=True)
    for key in data:
        if key in NEVER_SAVED or key not in allowed:
            continue
        values = [value for value in data.getlist(key) if value]
        if values:
            kept.setlist(key, values)
    return kept.urlencode()


def saved_view_save(*, actor: roles.Actor, page: str, name: str, query: str, allowed_keys: Iterable[str]) -> SavedView:
    """Keep the list filters ``query`` (a GET query string) under ``name`` for ``actor`` on ``page``."""
    if page not in SAVED_VIEW_PAGES:
        raise InvalidInput(_("This list cannot keep saved views."), details={"field": "page"})
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("Give the view a name."), details={"field": "name"})
    if len(name) > field_max_length(SavedView, "name"):
        raise InvalidInput(_("The name is too long."), details={"field": "name"})
    cleaned = _clean_query(query, allowed_keys)
    if len(cleaned) > field_max_length(SavedView, "query"):
        raise InvalidInput(_("Too many filters to keep in one view."), details={"field": "query"})
    now = timezone.now()
    with transaction.atomic():
        live = SavedView.objects.select_for_update().filter(user=actor, page=page, deleted_at__isnull=True)
        replaced = [view.pk for view in live if view.name == name]
        if not replaced and len(live) >= SAVED_VIEWS_PER_PAGE:
            raise InvalidInput(
                _("You have %(n)d saved views here; delete one first.") % {"n": SAVED_VIEWS_PER_PAGE},
                code="too_many_saved_views",
            )
        if replaced:
            SavedView.objects.filter(pk__in=replaced).update(deleted_at=now)
        view = SavedView.objects.create(user=actor, page=page, name=name, query=cleaned, created_at=now)
    logger.info("user %s saved view %s on %s (replacing %s)", actor.pk, view.pk, page, replaced or "none")
    return view


def saved_view_delete(*, actor: roles.Actor, view_id: int) -> SavedView:
    """Remove one of ``actor``'s own saved views (another user's is not found)."""
    with transaction.atomic():
        view = SavedView.objects.select_for_update().filter(pk=view_id, user=actor, deleted_at__isnull=True).first()
        if view is None:
            raise InvalidInput(_("There is no such saved view."), code="not_found")
        view.deleted_at = timezone.now()
        view.save(update_fields=["deleted_at"])
    logger.info("user %s deleted saved view %s on %s", actor.pk, view.pk, view.page)
    return view

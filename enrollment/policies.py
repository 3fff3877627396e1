"""Who may do what to an application: the one place the rules are written.

Services call the ``ensure_*`` functions, which raise ``NotPermitted``; pages and the API list the actions
a viewer may take with the same rules, so a page never offers what the service would refuse.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from enrollment import selectors
from enrollment.models import Application
from kernel import roles
from kernel.errors import NotPermitted


def ensure_filing_side(application: Application, actor: Any) -> None:
    """Staff of the filing or the treating institution (or an administrator): adding documents."""
    if roles.has_any_role(actor, roles.ADMIN):
        return
    institution = selectors.user_institution(actor)
    if institution is None or institution.pk not in (
        application.filing_institution_id,
        application.treating_institution_id,
    ):
        raise NotPermitted(_("Only staff of the filing institution may do this."))


def ensure_filing_institution(application: Application, actor: Any) -> None:
    """Withdrawing and resubmitting are the applicant's requests, held by the institution that filed them:
    its staff (and administrators) act on them; a treating hospital that did not file adds documents and
    diagnoses, but does not withdraw or resubmit another institution's filing (issue 18 item 11)."""
    if not selectors.on_filing_institution(actor, application):
        raise NotPermitted(
            _("Only staff of the institution that filed this application (or an administrator) may do this.")
        )

"""Thin forms of the reviewer pages: shape only; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from reviews.models import Decision, RejectReason, Stage


class ClaimForm(forms.Form):
    count = forms.IntegerField(label=_("how many"), min_value=1, max_value=200, initial=10)
    stage = forms.ChoiceField(label=_("stage"), required=False)

    def __init__(self, *args: Any, stages: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Stage.choices)
        self.fields["stage"].choices = [("", _("every stage I hold"))] + [(s, labels.get(s, s)) for s in stages]


class DecideForm(forms.Form):
    """One decision with its reason for the selected items (or the one whose row button was pressed)."""

    items = forms.TypedMultipleChoiceField(label=_("items"), coerce=int, required=False)
    decision = forms.ChoiceField(label=_("decision"), choices=Decision.choices, initial=Decision.APPROVE)
    reason_code = forms.ChoiceField(
        label=_("reason code (rejections)"), choices=[("", "—"), *RejectReason.choices], required=False
    )
    reason = forms.CharField(
        label=_("reason"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Needed for a rejection (the applicant reads it) and a return (what is missing)."),
    )
    two_diseases = forms.BooleanField(
        label=_("With “criteria not met” for M03900/M01600: enrol in 两病 medication coverage"), required=False
    )

    def __init__(self, *args: Any, item_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["items"].choices = [(pk, pk) for pk in item_ids]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("items"):
            self.add_error("items", _("Select at least one item."))
        return data


class BatchFilterForm(forms.Form):
    period = forms.RegexField(label=_("period"), regex=r"^\d{4}-\d{2}$", required=False, max_length=7)
    region = forms.CharField(label=_("region code"), required=False, max_length=9)

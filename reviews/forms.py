"""Thin forms of the reviewer pages: shape only; the services decide."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from enrollment.forms import ConfirmForm
from reviews.models import Decision, RejectReason, Stage, SupplementReason


class ClaimForm(forms.Form):
    count = forms.IntegerField(label=_("how many"), min_value=1, max_value=200, initial=10)
    stage = forms.ChoiceField(label=_("stage"), required=False)

    def __init__(self, *args: Any, stages: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Stage.choices)
        stage = cast(forms.ChoiceField, self.fields["stage"])
        stage.choices = [("", _("every stage I hold"))] + [(s, labels.get(s, s)) for s in stages]


class DecideForm(forms.Form):
    """One decision with its reason for the selected items (or the one whose row button was pressed)."""

    items = forms.TypedMultipleChoiceField(
        label=_("items"),
        coerce=int,
        required=False,
        error_messages={
            "invalid_choice": _("Item %(value)s is no longer yours to decide (its claim ran out or it was decided).")
        },
    )
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
    supplement_codes = forms.MultipleChoiceField(
        label=_("补正: what the clinic must add or correct (returns)"),
        choices=SupplementReason.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, item_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["items"]).choices = [(pk, pk) for pk in item_ids]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not data.get("items"):
            self.add_error("items", _("Select at least one item."))
        # Said here in the reviewer's words (the service's own refusal lists the codes, for API clients).
        if data.get("decision") == Decision.REJECT and not data.get("reason_code"):
            self.add_error("reason_code", _("A rejection needs a reason: choose one from the list."))
        if data.get("two_diseases") and not (
            data.get("decision") == Decision.REJECT and data.get("reason_code") == RejectReason.CRITERIA_NOT_MET
        ):
            self.add_error(
                "two_diseases",
                _("两病 medication coverage can be offered only with a rejection for “%(reason)s”.")
                % {"reason": RejectReason.CRITERIA_NOT_MET.label},
            )
        return data


class BatchFilterForm(forms.Form):
    period = forms.RegexField(label=_("period"), regex=r"^\d{4}-\d{2}$", required=False, max_length=7)
    region = forms.CharField(label=_("region code"), required=False, max_length=9)


class ImmediateRejectForm(ConfirmForm):
    """即时办结: the officer rejects on the spot (the application page's action)."""

    reason_code = forms.ChoiceField(label=_("reason code"), choices=RejectReason.choices)
    reason = forms.CharField(
        label=_("reason (the applicant reads it)"), widget=forms.Textarea(attrs={"rows": 2}), max_length=1000
    )

    def service_kwargs(self) -> dict[str, Any]:
        return {"reason_code": self.cleaned_data["reason_code"], "reason": self.cleaned_data["reason"]}


class ImmediateReturnForm(ConfirmForm):
    """即时办结: the officer returns for 补正 (the application page's action)."""

    supplement_codes = forms.MultipleChoiceField(
        label=_("what the clinic must add or correct"),
        choices=SupplementReason.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    reason = forms.CharField(
        label=_("note to the clinic"), widget=forms.Textarea(attrs={"rows": 2}), max_length=1000, required=False
    )

    def service_kwargs(self) -> dict[str, Any]:
        return {"supplement_codes": self.cleaned_data["supplement_codes"], "reason": self.cleaned_data["reason"]}


class AssembleBatchForm(forms.Form):
    """Assemble a region's batch for this month from the web (the same service as the monthly run)."""

    region = forms.TypedChoiceField(label=_("region"), coerce=int)
    confirm = forms.BooleanField(label=_("I have checked the count: assemble this region's batch now"), required=True)

    def __init__(self, *args: Any, regions: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["region"]).choices = regions

"""Web forms of the oversight pages: input shapes only; the rules live in oversight/services.py.

No form asks for a termination reason: a failed re-check terminates with ``recheck_failed`` and an upheld
objection with ``objection_upheld``; the reviewer's reason and the officer's resolution are the notes. A failure
may instead be returned to the clinic (reviews' 补正 checklist); the clinic's answer form takes a note and
documents (enrollment's document rows).
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from oversight.models import ObjectionChannel
from reviews.models import SupplementReason


class RecheckForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("re-check result"),
        choices=[("pass", _("pass")), ("fail", _("fail"))],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("reason"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    correction = forms.ChoiceField(
        label=_("correction of a failure"),
        choices=[
            ("terminate", _("terminate the enrollment today")),
            ("return", _("return to the clinic for correction; the enrollment keeps covering")),
        ],
        widget=forms.RadioSelect,
        initial="terminate",
        required=False,
    )
    codes = forms.MultipleChoiceField(
        label=_("what the clinic should add or correct"),
        choices=SupplementReason.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def clean_correction(self) -> str:
        return self.cleaned_data.get("correction") or "terminate"


class CorrectionAnswerForm(forms.Form):
    answer = forms.CharField(
        label=_("what was corrected or added"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


class PublishForm(forms.Form):
    days = forms.IntegerField(label=_("days"), min_value=5, max_value=30, required=False)


class ObjectionForm(forms.Form):
    channel = forms.ChoiceField(label=_("received by"), choices=ObjectionChannel.choices)
    text = forms.CharField(label=_("objection"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    contact = forms.CharField(label=_("objector's contact"), max_length=200, required=False)


class ResolveForm(forms.Form):
    resolution = forms.CharField(label=_("resolution"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

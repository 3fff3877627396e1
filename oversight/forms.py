"""Web forms of the oversight pages: input shapes only; the rules live in oversight/services.py."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from enrollment.models import TerminationReason
from oversight.models import ObjectionChannel

TERMINATION_CHOICES = [("", _("— choose —")), *TerminationReason.choices]


class RecheckForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("re-check result"),
        choices=[("pass", _("pass")), ("fail", _("fail"))],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("reason"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    termination_reason = forms.ChoiceField(
        label=_("termination reason (when it fails)"), choices=TERMINATION_CHOICES, required=False
    )


class PublishForm(forms.Form):
    days = forms.IntegerField(label=_("days"), min_value=5, max_value=30, required=False)


class ObjectionForm(forms.Form):
    channel = forms.ChoiceField(label=_("received by"), choices=ObjectionChannel.choices)
    text = forms.CharField(label=_("objection"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    contact = forms.CharField(label=_("objector's contact"), max_length=200, required=False)


class ResolveForm(forms.Form):
    resolution = forms.CharField(label=_("resolution"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    termination_reason = forms.ChoiceField(
        label=_("termination reason (when upheld)"), choices=TERMINATION_CHOICES, required=False
    )

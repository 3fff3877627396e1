"""Web forms of the oversight pages: input shapes only; the rules live in oversight/services.py.

No form asks for a termination reason: a failed re-check terminates with ``recheck_failed`` and an upheld
objection with ``objection_upheld``; the reviewer's reason and the officer's resolution are the notes.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from oversight.models import ObjectionChannel


class RecheckForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("re-check result"),
        choices=[("pass", _("pass")), ("fail", _("fail"))],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("reason"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


class PublishForm(forms.Form):
    days = forms.IntegerField(label=_("days"), min_value=5, max_value=30, required=False)


class ObjectionForm(forms.Form):
    channel = forms.ChoiceField(label=_("received by"), choices=ObjectionChannel.choices)
    text = forms.CharField(label=_("objection"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    contact = forms.CharField(label=_("objector's contact"), max_length=200, required=False)


class ResolveForm(forms.Form):
    resolution = forms.CharField(label=_("resolution"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

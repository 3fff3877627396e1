"""Thin web forms of the assistance pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class SettlementUploadForm(forms.Form):
    file = forms.FileField(
        label=_("settlement file"),
        help_text=_("CSV (UTF-8, UTF-8 with BOM or GBK) or XLSX, with a header row; see the data format."),
        widget=forms.ClearableFileInput(
            attrs={"accept": ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        ),
    )


class CommitForm(forms.Form):
    confirm = forms.BooleanField(label=_("I have checked the dry-run report and confirm"), required=True)


class AlertActionForm(forms.Form):
    note = forms.CharField(label=_("note"), max_length=1000, required=False)

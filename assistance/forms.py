"""Thin web forms of the assistance pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from kernel.uploads import upload_file_field


class SettlementUploadForm(forms.Form):
    file = upload_file_field(
        _("settlement file"), _("CSV (UTF-8, UTF-8 with BOM or GBK) or XLSX, with a header row; see the data format.")
    )


class AlertActionForm(forms.Form):
    note = forms.CharField(label=_("note"), max_length=1000, required=False)

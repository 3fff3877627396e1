"""Thin web forms: shape and types only. Business rules live in the services, which the views call."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UsernameField
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from enrollment import selectors
from enrollment.idnumbers import parse_id_number
from enrollment.models import (
    MANUAL_TERMINATION_CHOICES,
    Disease,
    DocumentType,
    Institution,
    InsuranceType,
    Region,
)
from kernel.errors import DomainError
from kernel.input_guard import username_max_length


class LoginForm(AuthenticationForm):
    """Django's login form with the user name's length enforced (Django sets only the widget's ``maxlength``).

    A longer name can belong to no account; refused as a form error before ``authenticate()``, whose login
    throttling (django-axes) stores the name of every failure in a 255-character column (issue 18 item 12).
    """

    username = UsernameField(max_length=username_max_length(), widget=forms.TextInput(attrs={"autofocus": True}))


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


def add_domain_error(form: forms.BaseForm, error: DomainError) -> None:
    """Show a service's refusal next to the field it names, or at the top of the form."""
    field = error.details.get("field") if isinstance(error.details, dict) else None
    form.add_error(field if field in form.fields else None, str(error.message))


class DiseaseSelect(forms.Select):
    """Each option carries ``data-search``: the code and the loosely compared names and aliases
    (enrollment.selectors.DiseaseMatcher.search_text), which the page's catalogue search matches the
    typed text against, folded by the same rule (static/js/filing.js)."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        instance = getattr(value, "instance", None)
        if isinstance(instance, Disease):
            option["attrs"]["data-search"] = selectors.DiseaseMatcher.search_text(instance)
        return option


class DiseaseChoiceField(forms.ModelChoiceField):
    widget = DiseaseSelect

    def label_from_instance(self, obj: Disease) -> str:
        aliases = [str(alias) for alias in (obj.aliases or []) if str(alias).strip()]
        return f"{obj.code} {obj.name}" + (f"（{'、'.join(aliases)}）" if aliases else "")


class DocumentForm(forms.Form):
    """One uploaded document; a row left empty is ignored."""

    doc_type = forms.ChoiceField(
        label=_("document type"), choices=[("", "---------"), *DocumentType.choices], required=False
    )
    file = forms.FileField(
        label=_("file"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"}),
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("file") and not data.get("doc_type"):
            self.add_error("doc_type", _("Choose what kind of document this is."))
        return data


DocumentFormSet = forms.formset_factory(DocumentForm, extra=3, max_num=6)


def uploaded_documents(formset: forms.BaseFormSet) -> list[tuple[str, Any]]:
    return [
        (form.cleaned_data["doc_type"], form.cleaned_data["file"])
        for form in formset.forms
        if form.cleaned_data.get("file")
    ]


class FilingForm(forms.Form):
    """File an application: the person (looked up by 身份证号, registered if new), disease, treating institution."""

    id_number = forms.CharField(
        label=_("ID number (身份证号)"),
        max_length=30,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "text", "autofocus": True}),
    )
    name = forms.CharField(label=_("name"), max_length=50, required=False)
    insured_region = forms.ModelChoiceField(
        label=_("insured region"), queryset=Region.objects.order_by("code"), required=False
    )
    insurance_type = forms.ChoiceField(
        label=_("insurance type"), choices=InsuranceType.choices, initial=InsuranceType.RESIDENT
    )
    insurance_number = forms.CharField(label=_("insurance number"), max_length=30, required=False)
    phone = forms.CharField(label=_("phone"), max_length=20, required=False)
    disease = DiseaseChoiceField(label=_("disease"), queryset=selectors.diseases_active())
    treating_institution = forms.ModelChoiceField(
        label=_("treating institution"), queryset=Institution.objects.select_related("region").order_by("code")
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_id_number(self) -> str:
        try:
            return parse_id_number(self.cleaned_data["id_number"]).number
        except DomainError as error:
            raise forms.ValidationError(str(error.message), code="invalid_id_number")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        number = data.get("id_number")
        self.person = selectors.person_by_id_number(self.user, number) if number else None
        if number and self.person is None:
            # A new person: what registration needs.
            if not (data.get("name") or "").strip():
                self.add_error("name", _("The person is not registered yet: enter their name."))
            if not data.get("insured_region"):
                self.add_error("insured_region", _("The person is not registered yet: choose their insured region."))
        return data

    def person_changes(self) -> bool:
        """Whether the clerk entered a new person or changed a known person's details."""
        person = self.person
        if person is None:
            return True
        data = self.cleaned_data
        return any(
            [
                (data.get("name") or "").strip() not in ("", person.name),
                data.get("insured_region") not in (None, person.insured_region),
                data.get("insurance_type") != person.insurance_type,
                (data.get("insurance_number") or "").strip() not in ("", person.insurance_number),
                (data.get("phone") or "").strip() not in ("", person.phone),
            ]
        )


class RenewalForm(forms.Form):
    """File the renewal (复审) of an enrollment: the rest is carried forward from it."""

    treating_institution = forms.ModelChoiceField(
        label=_("treating institution"), queryset=Institution.objects.select_related("region").order_by("code")
    )
    confirm = forms.BooleanField(label=_("I have checked and confirm this action"), required=True)


class DiagnosisForm(forms.Form):
    icd10_code = forms.CharField(
        label=_("ICD-10 code"), max_length=10, widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True})
    )
    # Today unless the physician changes it (most diagnoses are recorded the day they are made).
    diagnosis_date = forms.DateField(label=_("diagnosis date"), widget=DateInput(), initial=timezone.localdate)

    def clean_diagnosis_date(self) -> dt.date:
        value = self.cleaned_data["diagnosis_date"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("The diagnosis date cannot be in the future."))
        return value


class ConfirmForm(forms.Form):
    """Every action asks for a tick, so a mis-click never changes an application (works without JavaScript)."""

    confirm = forms.BooleanField(label=_("I have checked and confirm this action"), required=True)


class WithdrawForm(ConfirmForm):
    reason = forms.CharField(label=_("reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500)


class ResubmitForm(ConfirmForm):
    note = forms.CharField(
        label=_("what was added"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500, required=False
    )
    doc_type = forms.ChoiceField(
        label=_("document type"), choices=[("", "---------"), *DocumentType.choices], required=False
    )
    file = forms.FileField(label=_("file"), required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("file") and not data.get("doc_type"):
            self.add_error("doc_type", _("Choose what kind of document this is."))
        return data


class TerminateForm(ConfirmForm):
    reason = forms.ChoiceField(label=_("termination reason"), choices=MANUAL_TERMINATION_CHOICES)
    note = forms.CharField(label=_("note"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500, required=False)
    ended_on = forms.DateField(label=_("coverage ended on"), required=False, widget=DateInput())


class ImmediateApproveForm(ConfirmForm):
    note = forms.CharField(label=_("note"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500, required=False)


ACTION_FORMS: dict[str, type[ConfirmForm]] = {
    "withdraw": WithdrawForm,
    "resubmit": ResubmitForm,
    "terminate": TerminateForm,
    "approve_immediately": ImmediateApproveForm,
}


class ListSearchForm(forms.Form):
    """The list's search by name or 身份证号: POSTed, kept in the session, never put into a URL."""

    q = forms.CharField(
        label=_("ID number or name"),
        required=False,
        max_length=50,
        widget=forms.TextInput(attrs={"autocomplete": "off", "type": "search"}),
    )


class SavedViewForm(forms.Form):
    name = forms.CharField(label=_("name of the view"), max_length=60)

"""Thin web views: scope through selectors, act through services, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from enrollment import roles, selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    applications = selectors.applications_visible_to(request.user)
    context = {
        "role": roles.primary_role(request.user),
        "institution": selectors.user_institution(request.user),
        "region": selectors.user_region(request.user),
        "counts": selectors.states_summary(applications),
        "recent": applications[:20],
    }
    return render(request, "enrollment/home.html", context)

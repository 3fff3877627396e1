"""The project's URLs plus the bare comparison endpoints of bench.http_paths (benchmark use only).

Each is what a plain DRF developer would write for the same answer, with the project's token
authentication (the DRF defaults of config.settings), so the product path's ratio to it measures what the
product adds on top of the framework:

- ``GET /bench/bare-queue/``: the same table (review items) with the same scope a reviewer has (their
  region and its sub-regions, pending, oldest first, 50 a page) through a plain ModelSerializer: no
  separation-of-duties filter, no lease filter, no related rows;
- ``POST /bench/bare-filing/``: the filing's body (``id_number``, ``disease``, ``treating_institution``)
  turned into one application row by a ModelSerializer: three look-ups and one INSERT, no rules, no row
  lock, no audit row;
- ``POST /bench/bare-coverage/``: the coverage question (``id_number``, ``disease``, ``date``) answered
  by one SQL statement (bench.coverage.BASELINE_SQL), no scope check, no access-log row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.urls import path
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.coverage import BASELINE_SQL
from config.urls import urlpatterns as project_urlpatterns
from enrollment.models import Application, Disease, Institution, Person, Region
from reviews.models import ReviewItem


class BareItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReviewItem
        fields = ["id", "application", "region", "stage", "outcome", "queued_at"]


class BareQueueView(APIView):
    def get(self, request: Request) -> Response:
        region_id = request.user.profile.region_id
        regions = [region_id, *Region.objects.filter(parent_id=region_id).values_list("pk", flat=True)]
        items = ReviewItem.objects.filter(outcome="pending", region_id__in=regions).order_by("queued_at", "id")[:50]
        return Response({"results": BareItemSerializer(items, many=True).data})


class BareFilingSerializer(serializers.ModelSerializer):
    id_number = serializers.SlugRelatedField(source="person", slug_field="id_number", queryset=Person.objects.all())
    disease = serializers.SlugRelatedField(slug_field="code", queryset=Disease.objects.all())
    treating_institution = serializers.SlugRelatedField(slug_field="code", queryset=Institution.objects.all())

    class Meta:
        model = Application
        fields = ["id", "id_number", "disease", "treating_institution", "state", "filed_at"]
        read_only_fields = ["id", "state", "filed_at"]


class BareFilingView(APIView):
    def post(self, request: Request) -> Response:
        serializer = BareFilingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        person = serializer.validated_data["person"]
        serializer.save(
            filed_by=request.user,
            filing_institution_id=request.user.profile.institution_id,
            region_id=person.insured_region_id,
        )
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class BareCoverageQuery(serializers.Serializer):
    id_number = serializers.CharField(max_length=30)
    disease = serializers.CharField(max_length=20)
    date = serializers.DateField(required=False)


class BareCoverageView(APIView):
    def post(self, request: Request) -> Response:
        query = BareCoverageQuery(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        on = data.get("date") or dt.date.today()
        with connection.cursor() as cursor:
            cursor.execute(BASELINE_SQL, {"id_number": data["id_number"], "disease": data["disease"], "on": on})
            row = cursor.fetchone()
        if row is None:
            return Response({"covered": False, "on": on})
        application_id, state, valid_from, valid_until, ended_on, approval_id, approved_at = row
        end = ended_on if state in ("expired", "renewed", "terminated") else valid_until
        return Response(
            {
                "covered": end is None or end >= on,
                "on": on,
                "application": application_id,
                "state": state,
                "valid_from": valid_from,
                "valid_until": end,
                "approval": {"id": approval_id, "at": approved_at},
            }
        )


def _view(view: Any) -> Any:
    return view.as_view()


urlpatterns = [
    path("bench/bare-queue/", _view(BareQueueView)),
    path("bench/bare-filing/", _view(BareFilingView)),
    path("bench/bare-coverage/", _view(BareCoverageView)),
    *project_urlpatterns,
]

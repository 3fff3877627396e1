"""The project's URLs plus ``/bench/bare-queue/``: the comparison endpoint of bench.http_queue.

It reads the same table (review items) with the same scope a reviewer has (their region and its
sub-regions, pending, oldest first, 50 a page) through a plain DRF ModelSerializer: no
separation-of-duties filter, no lease filter, no related rows. Benchmark use only.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns
from enrollment.models import Region
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


def _bare(*args: Any, **kwargs: Any) -> Any:
    return BareQueueView.as_view()(*args, **kwargs)


urlpatterns = [path("bench/bare-queue/", _bare), *project_urlpatterns]

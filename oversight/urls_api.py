"""Oversight API routes (included under /api/v1/ from config/urls.py)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from oversight import api

router = SimpleRouter()
router.register("rechecks", api.RecheckViewSet, basename="api-recheck")
router.register("notices", api.NoticeViewSet, basename="api-notice")
router.register("notice-entries", api.NoticeEntryViewSet, basename="api-notice-entry")
router.register("objections", api.ObjectionViewSet, basename="api-objection")

urlpatterns = [path("", include(router.urls))]

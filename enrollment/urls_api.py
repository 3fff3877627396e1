from django.urls import include, path
from rest_framework.routers import DefaultRouter

from enrollment import api

router = DefaultRouter()
router.register("persons", api.PersonViewSet, basename="person")
router.register("diseases", api.DiseaseViewSet, basename="disease")
router.register("institutions", api.InstitutionViewSet, basename="institution")
router.register("applications", api.ApplicationViewSet, basename="application")
router.register("reminders", api.ReminderInboxViewSet, basename="reminder")
router.register("auth/tokens", api.ApiTokenViewSet, basename="api-token-item")

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("auth/token/revoke/", api.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("coverage/", api.CoverageView.as_view(), name="api-coverage"),
    path("", include(router.urls)),
]

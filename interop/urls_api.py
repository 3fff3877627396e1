from django.urls import include, path
from rest_framework.routers import SimpleRouter

from interop import api

router = SimpleRouter()
router.register("roster-imports", api.RosterImportViewSet, basename="roster-import")
router.register("assisted-filings", api.AssistedFilingViewSet, basename="assisted-filing")
router.register("catalogue-imports", api.CatalogueImportViewSet, basename="catalogue-import")

urlpatterns = [
    path("exports/enrollments/", api.EnrollmentExportView.as_view(), name="export-enrollments"),
    path("", include(router.urls)),
]

"""Web pages of the interop app (included from enrollment/urls.py)."""

from django.urls import path

from interop import views

urlpatterns = [
    path("roster-imports/", views.roster_list, name="roster-list"),
    path("roster-imports/<int:pk>/", views.roster_detail, name="roster-detail"),
    path("roster-imports/<int:pk>/commit/", views.roster_commit, name="roster-commit"),
    path("roster-imports/<int:pk>/report.csv", views.roster_report, {"file_format": "csv"}, name="roster-report-csv"),
    path(
        "roster-imports/<int:pk>/report.xlsx",
        views.roster_report,
        {"file_format": "xlsx"},
        name="roster-report-xlsx",
    ),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/<int:pk>/file/", views.worklist_file, name="worklist-file"),
    path("worklist/<int:pk>/dismiss/", views.worklist_dismiss, name="worklist-dismiss"),
]

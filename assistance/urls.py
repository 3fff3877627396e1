"""Web pages of the assistance app (included from config/urls.py)."""

from django.urls import path

from assistance import views

urlpatterns = [
    path("assistance/alerts/", views.alert_worklist, name="cost-alerts"),
    *(
        path(
            f"assistance/alerts/<int:pk>/{action}/", views.alert_action, {"action": action}, name=f"cost-alert-{action}"
        )
        for action in ("acknowledge", "refer", "close")
    ),
    path("assistance/imports/", views.import_list, name="settlement-imports"),
    path("assistance/imports/<int:pk>/", views.import_detail, name="settlement-import-detail"),
    path("assistance/imports/<int:pk>/commit/", views.import_commit, name="settlement-import-commit"),
    path("assistance/statements/<int:pk>/", views.statement, name="assistance-statement"),
    path("assistance/reports/<slug:name>.csv", views.report_csv, name="assistance-report-csv"),
]

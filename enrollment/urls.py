from django.contrib.auth import views as auth_views
from django.urls import path

from enrollment import forms, views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", authentication_form=forms.LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("applications/", views.application_list, name="application-list"),
    path(
        "applications/export.csv", views.application_list_export, {"file_format": "csv"}, name="application-export-csv"
    ),
    path(
        "applications/export.xlsx",
        views.application_list_export,
        {"file_format": "xlsx"},
        name="application-export-xlsx",
    ),
    path("applications/renewals/", views.renewal_list, name="renewal-list"),
    path("applications/views/", views.saved_view_save, name="saved-view-save"),
    path("applications/views/<int:pk>/delete/", views.saved_view_delete, name="saved-view-delete"),
    path("applications/new/", views.application_file, name="application-file"),
    path("applications/new/check.json", views.filing_check, name="filing-check"),
    path("applications/<int:pk>/", views.application_detail, name="application-detail"),
    path("applications/<int:pk>/diagnose/", views.application_diagnose, name="application-diagnose"),
    path("applications/<int:pk>/renew/", views.application_renew, name="application-renew"),
    path("reminders/<int:pk>/read/", views.reminder_read, name="reminder-read"),
    path("applications/<int:pk>/<slug:action>/", views.application_action, name="application-action"),
    path("documents/<int:pk>/", views.document_download, name="document-download"),
    path("reports/", views.reports, name="reports"),
    path("reports/<slug:name>.csv", views.report_csv, name="report-csv"),
    path("assets/plotly.min.js", views.plotly_js, name="plotly-js"),
    path("favicon.ico", views.favicon, name="favicon"),
]

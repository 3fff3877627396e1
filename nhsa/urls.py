"""Web pages of the platform link (included from config/urls.py)."""

from django.urls import path

from nhsa import views

urlpatterns = [
    path("platform/messages/", views.outbox, name="platform-outbox"),
    *(
        path(
            f"platform/messages/<int:pk>/{action}/", views.message_action, {"action": action}, name=f"platform-{action}"
        )
        for action in ("retry", "release", "cancel")
    ),
    path("platform/reconciliations/", views.reconciliation_list, name="platform-reconciliation-list"),
    path("platform/reconciliations/<int:pk>/", views.reconciliation_detail, name="platform-reconciliation-detail"),
    path(
        "platform/reconciliations/<int:pk>/differences.csv",
        views.reconciliation_export,
        {"file_format": "csv"},
        name="platform-reconciliation-csv",
    ),
    path(
        "platform/reconciliations/<int:pk>/differences.xlsx",
        views.reconciliation_export,
        {"file_format": "xlsx"},
        name="platform-reconciliation-xlsx",
    ),
    *(
        path(
            f"platform/differences/<int:pk>/{action}/",
            views.difference_action,
            {"action": action},
            name=f"platform-difference-{action}",
        )
        for action in ("resend", "cancel", "accept")
    ),
]

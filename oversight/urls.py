"""Oversight pages (included from config/urls.py): re-checks and notices for staff, public notice pages."""

from django.urls import path

from oversight import views

urlpatterns = [
    path("oversight/rechecks/", views.recheck_queue, name="recheck-queue"),
    path("oversight/rechecks/quality.csv", views.quality_export, name="recheck-quality-csv"),
    path("oversight/rechecks/<int:pk>/", views.recheck_detail, name="recheck-detail"),
    path("oversight/rechecks/<int:pk>/decide/", views.recheck_decide, name="recheck-decide"),
    path("oversight/rechecks/<int:pk>/correction/", views.recheck_correction, name="recheck-correction"),
    path("oversight/notices/", views.notice_list, name="notice-list"),
    path("oversight/batches/<int:pk>/notice/", views.notice_publish, name="notice-publish"),
    path("oversight/notices/<int:pk>/", views.notice_detail, name="notice-detail"),
    path("oversight/notices/<int:pk>/entries.csv", views.notice_export, {"file_format": "csv"}, name="notice-csv"),
    path("oversight/notices/<int:pk>/entries.xlsx", views.notice_export, {"file_format": "xlsx"}, name="notice-xlsx"),
    path("oversight/notice-entries/<int:pk>/objections/", views.objection_record, name="objection-record"),
    path("oversight/objections/<int:pk>/uphold/", views.objection_resolve, {"upheld": True}, name="objection-uphold"),
    path("oversight/objections/<int:pk>/reject/", views.objection_resolve, {"upheld": False}, name="objection-reject"),
    # Public: a notice is public by nature (公示); these show only the masked snapshot, during the notice period.
    path("notices/", views.public_notice_list, name="public-notice-list"),
    path("notices/<str:token>/", views.public_notice, name="public-notice"),
]

from django.urls import path

from reviews import views

urlpatterns = [
    path("reviews/queue/", views.queue, name="review-queue"),
    path("reviews/queue/claim/", views.queue_claim, name="review-claim"),
    path("reviews/queue/release/", views.queue_release, name="review-release"),
    path("reviews/queue/decide/", views.queue_decide, name="review-decide"),
    path("reviews/batches/", views.batch_list, name="batch-list"),
    path("reviews/batches/<int:pk>/", views.batch_detail, name="batch-detail"),
    path("reviews/batches/assemble/", views.batch_assemble, name="batch-assemble"),
    path("reviews/notifications/", views.notification_list, name="review-notifications"),
    path("reviews/notifications/read/", views.notifications_read, name="review-notifications-read"),
    path("reviews/reports/on-time.csv", views.on_time_csv, name="report-on-time-csv"),
]

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from reviews import api

router = DefaultRouter(trailing_slash=True)
router.register("batches", api.BatchViewSet, basename="review-batch")
router.register("queue", api.QueueViewSet, basename="review-queue")
router.register("review-items", api.ReviewItemViewSet, basename="review-item")
router.register("immediate-approvals", api.ImmediateApprovalViewSet, basename="immediate-approval")

urlpatterns = [path("", include(router.urls))]

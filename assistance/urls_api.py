from django.urls import include, path
from rest_framework.routers import SimpleRouter

from assistance import api

router = SimpleRouter()
router.register("cost-alerts", api.AlertViewSet, basename="cost-alert")

urlpatterns = [
    path("settlements/", api.SettlementBatchView.as_view(), name="settlement-batch"),
    path("", include(router.urls)),
]

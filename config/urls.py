from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.security import swagger_ui_csp

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("enrollment.urls_api")),
    path("api/v1/", include("reviews.urls_api")),
    path("api/v1/", include("interop.urls_api")),
    path("api/v1/", include("assistance.urls_api")),
    path("api/v1/", include("oversight.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so script-src needs no 'unsafe-inline'.
    path("api/docs/", swagger_ui_csp(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="swagger-ui"),
    path("health/", include("config.health")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("nhsa.urls")),
    path("", include("assistance.urls")),
    path("", include("enrollment.urls")),
    path("", include("reviews.urls")),
    path("", include("interop.urls")),
    path("", include("oversight.urls")),
]
handler404 = "kernel.api_support.not_found"
handler500 = "kernel.api_support.server_error"

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

"""``Cache-Control: no-store`` on every response that may carry personal data (issue 18, item 11).

A browser's disk cache or a shared proxy must not keep a copy of a person's record, a coverage answer or a
worklist: every response under ``/api/`` and every response to a logged-in user says ``no-store`` (with
``Pragma: no-cache`` for HTTP/1.0 caches). A view that chose its own caching keeps it (static files from
whitenoise never reach this middleware; ``/assets/plotly.min.js`` sets ``public``), and the OpenAPI schema
and Swagger UI, which hold no personal data, stay cacheable.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Under /api/ but no personal data in them.
CACHEABLE_PREFIXES = ("/api/schema/", "/api/docs/")


class NoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control") or not self.personal(request):
            return response
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    @staticmethod
    def personal(request: HttpRequest) -> bool:
        path = request.path_info
        if path.startswith("/api/"):
            return not path.startswith(CACHEABLE_PREFIXES)
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated)

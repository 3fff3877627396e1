from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"
    verbose_name = _("Reviews")

    def ready(self) -> None:
        from enrollment import services
        from reviews.services import application_approve_immediately, review_items_close_for

        if review_items_close_for not in services.APPLICATION_CLOSED_HOOKS:
            services.APPLICATION_CLOSED_HOOKS.append(review_items_close_for)
        services.APPLICATION_ACTION_SERVICES["approve_immediately"] = application_approve_immediately

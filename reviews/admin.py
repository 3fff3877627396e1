from django.contrib import admin

from reviews.models import ReviewBatch


@admin.register(ReviewBatch)
class ReviewBatchAdmin(admin.ModelAdmin):
    list_display = ["region", "period", "state", "item_count", "cutoff", "closed_at"]
    list_filter = ["state"]
    list_select_related = ["region"]

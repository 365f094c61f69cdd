"""The ledger in the admin: every model call with its cost, and who it was charged to."""

from __future__ import annotations

from django.contrib import admin

from .models import Charge, UsageEntry


class ChargeInline(admin.TabularInline):
    model = Charge
    extra = 0
    can_delete = False
    readonly_fields = ["user", "cost_usd", "created_at"]


@admin.register(UsageEntry)
class UsageEntryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "kind",
        "room",
        "message",
        "model",
        "status",
        "error_code",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cost_usd",
        "ttft_ms",
        "duration_ms",
        "retries",
    ]
    list_filter = ["kind", "status", "provider", "model"]
    search_fields = ["room__slug", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["room"]
    raw_id_fields = ["room", "message"]
    inlines = [ChargeInline]

    def has_add_permission(self, request: object) -> bool:
        return False  # written by the reply path only

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "user", "cost_usd", "entry"]
    search_fields = ["user__username"]
    raw_id_fields = ["entry", "user"]
    date_hierarchy = "created_at"

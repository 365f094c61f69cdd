"""Admin screens for rooms and messages, with each reply's model, usage and timing."""

from django.contrib import admin

from .models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "title",
        "owner",
        "model",
        "is_private",
        "summary_upto_id",
        "updated_at",
    ]
    search_fields = ["slug", "title", "owner__username"]
    list_filter = ["is_private"]
    raw_id_fields = ["owner"]
    # Written by the background summarizer (long rooms); editing them by hand would desync it.
    readonly_fields = ["summary", "summary_upto_id", "created_at", "updated_at"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "room",
        "role",
        "author",
        "status",
        "provider",
        "model",
        "stop_reason",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "estimated_input_tokens",
        "time_to_first_token_ms",
        "duration_ms",
        "cost_usd",
        "created_at",
    ]
    list_filter = ["role", "status", "provider", "model"]
    search_fields = ["text", "room__slug", "author__username"]
    raw_id_fields = ["room", "author"]
    readonly_fields = [
        "provider",
        "model",
        "stop_reason",
        "error_code",
        "error_message",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "estimated_input_tokens",
        "time_to_first_token_ms",
        "duration_ms",
        "cost_usd",
        "created_at",
        "finished_at",
    ]

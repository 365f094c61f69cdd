"""Admin screens for operators: auto-mode reply decisions, and feedback on replies per model."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from chatsite.rooms.models import Message

from .feedback import per_model, with_thumbs
from .models import ReplyDecision, ReplyFeedback


@admin.register(ReplyDecision)
class ReplyDecisionAdmin(admin.ModelAdmin):
    """What `auto` mode decided for each message: the prompt, the answer and the cost."""

    list_display = [
        "message",
        "wanted",
        "how",
        "model",
        "answer",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["wanted", "how", "model"]
    raw_id_fields = ["message"]
    readonly_fields = [f.name for f in ReplyDecision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ReplyFeedback)
class ReplyFeedbackAdmin(admin.ModelAdmin):
    """Claude's replies with their 👍 and 👎, and the totals per model above the list."""

    change_list_template = "admin/conversation/replyfeedback/change_list.html"
    list_display = ["id", "room", "model", "status", "thumbs_up", "thumbs_down", "created_at"]
    list_filter = ["model", "status"]
    search_fields = ["room__slug"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        replies = super().get_queryset(request).filter(role=Message.Role.ASSISTANT)
        return with_thumbs(replies.select_related("room"))

    @admin.display(description="👍", ordering="thumbs_up")
    def thumbs_up(self, reply: Any) -> int:
        return int(reply.thumbs_up)

    @admin.display(description="👎", ordering="thumbs_down")
    def thumbs_down(self, reply: Any) -> int:
        return int(reply.thumbs_down)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        context = {**(extra_context or {}), "per_model": per_model()}
        response = super().changelist_view(request, extra_context=context)
        return response  # type: ignore[return-value]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

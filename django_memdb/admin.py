"""Read-only admin views of the stored snapshots and journal."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from .models import PersistentJournal, PersistentStorage


class _StoredAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("__str__", "rows", "size", "codec", "inserted")
    list_filter = ("application", "modelname")
    fields = ("application", "modelname", "rows", "size", "codec", "inserted")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Never load the blobs for a listing.
        return super().get_queryset(request).defer("data").annotate(data_size=Length("data"))

    @admin.display(description="size", ordering="data_size")
    def size(self, obj: Any) -> str:
        return filesizeformat(obj.data_size)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PersistentStorage)
class PersistentStorageAdmin(_StoredAdmin):
    pass


@admin.register(PersistentJournal)
class PersistentJournalAdmin(_StoredAdmin):
    pass

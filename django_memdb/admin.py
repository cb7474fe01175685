"""Read-only admin views of the stored snapshots and journal, with compact and verify actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin, messages
from django.db import DatabaseError, models
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, Length
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from . import inspection, registry
from .exceptions import MemDBError
from .models import PersistentJournal, PersistentStorage

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:  # not subscriptable at run time
    _ModelAdmin = admin.ModelAdmin


class _StoredAdmin(_ModelAdmin):
    list_display: tuple[str, ...] = ("__str__", "rows", "size", "codec", "age", "inserted")
    list_filter = ("application", "modelname")
    fields: ClassVar[tuple[str, ...]] = ("application", "modelname", "rows", "size", "codec", "inserted", "age")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Never load the blobs for a listing.
        return super().get_queryset(request).defer("data").annotate(data_size=Length("data"))

    @admin.display(description="size", ordering="data_size")
    def size(self, obj: Any) -> str:
        return filesizeformat(obj.data_size)

    @admin.display(description="age", ordering="-inserted")
    def age(self, obj: Any) -> str:
        return inspection.format_age((timezone.now() - obj.inserted).total_seconds())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PersistentStorage)
class PersistentStorageAdmin(_StoredAdmin):
    list_display = ("__str__", "rows", "size", "codec", "age", "journal", "inserted")
    fields = ("application", "modelname", "rows", "size", "codec", "inserted", "age", "journal")
    readonly_fields = fields
    actions = ("compact_tables", "verify_tables")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        entries = (
            PersistentJournal.objects.filter(
                application=OuterRef("application"), modelname=OuterRef("modelname")
            )
            .order_by()
            .values("application")
            .annotate(count=Count("id"))
            .values("count")
        )
        return super().get_queryset(request).annotate(
            journal_entries=Coalesce(Subquery(entries, output_field=IntegerField()), 0)
        )

    @admin.display(description="journal entries", ordering="journal_entries")
    def journal(self, obj: Any) -> int:
        return obj.journal_entries

    def _selected_models(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[type[models.Model]]:
        keys = set(queryset.order_by().values_list("application", "modelname"))
        found = []
        for application, modelname in sorted(keys):
            model = registry.model_for_key(application, modelname)
            if model is None:
                self.message_user(request, inspection.orphan_message(f"{application}.{modelname}"), messages.WARNING)
            else:
                found.append(model)
        return found

    @admin.action(description="Compact selected tables", permissions=["delete"])
    def compact_tables(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Flush, then rewrite each table's snapshot from this process's memory."""
        selected = self._selected_models(request, queryset)
        if not selected:
            return
        try:
            flushed, results = inspection.compact(selected)
        except (MemDBError, DatabaseError) as exc:
            self.message_user(request, f"Compaction failed: {exc}", messages.ERROR)
            return
        if flushed:
            self.message_user(request, f"Flushed {inspection.plural(flushed, 'changed row')}.", messages.INFO)
        for result in results:
            level = messages.WARNING if result.skipped else messages.SUCCESS
            self.message_user(request, result.summary(), level)

    @admin.action(description="Verify selected tables", permissions=["view"])
    def verify_tables(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Compare each table in this process's memory with what storage would restore."""
        selected = self._selected_models(request, queryset)
        if not selected:
            return
        try:
            checks = inspection.verify(selected)
        except (MemDBError, DatabaseError) as exc:
            self.message_user(request, f"Verification failed: {exc}", messages.ERROR)
            return
        for check in checks:
            self.message_user(request, check.summary(), messages.SUCCESS if check.ok else messages.ERROR)


@admin.register(PersistentJournal)
class PersistentJournalAdmin(_StoredAdmin):
    pass

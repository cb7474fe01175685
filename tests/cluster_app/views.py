"""Write and read the shared in-memory tables through real requests."""

from __future__ import annotations

import os

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from tests.cluster_app.models import Entry, Scratchpad


@csrf_exempt
def entries(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        Entry.objects.create(text=request.POST.get("text", ""))
    texts = list(Entry.objects.order_by("id").values_list("text", flat=True))
    return JsonResponse({"texts": texts, "pid": os.getpid()})


@csrf_exempt
def create_both(request: HttpRequest) -> JsonResponse:
    """One in-memory create and one persisted create: the request of benchmarks.workers."""
    Scratchpad.objects.create(text="scratch")
    entry = Entry.objects.create(text=request.POST.get("text", ""))
    return JsonResponse({"pk": entry.pk, "pid": os.getpid()})


class RolledBack(Exception):
    pass


@csrf_exempt
def inside_rolled_back_default(request: HttpRequest) -> JsonResponse:
    """An in-memory write inside a transaction of the default database that rolls back."""
    try:
        with transaction.atomic(using="default"):
            Entry.objects.create(text=request.POST.get("text", ""))
            raise RolledBack
    except RolledBack:
        pass
    return JsonResponse({"pid": os.getpid()})

"""Views that write and read in-memory tables through real requests."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from tests.models import Persistent


@csrf_exempt
def items(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        Persistent.objects.create(text=request.POST.get("text", ""))
    texts = list(Persistent.objects.order_by("id").values_list("text", flat=True))
    return JsonResponse({"texts": texts, "pid": os.getpid()})


@csrf_exempt
def session(request: HttpRequest) -> JsonResponse:
    """POST stores ``text`` in the session; both answer what the session holds and who answered."""
    if request.method == "POST":
        request.session["text"] = request.POST.get("text", "")
    return JsonResponse({"text": request.session.get("text"), "key": request.session.session_key, "pid": os.getpid()})

"""Views that write and read in-memory tables through real requests."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from tests.models import Persistent
from tests.session_view import session as session


@csrf_exempt
def items(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        Persistent.objects.create(text=request.POST.get("text", ""))
    texts = list(Persistent.objects.order_by("id").values_list("text", flat=True))
    return JsonResponse({"texts": texts, "pid": os.getpid()})



"""A view of the session alone, for the URL confs of every test app (it needs no model)."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def session(request: HttpRequest) -> JsonResponse:
    """POST stores ``text`` in the session; both answer what the session holds and who answered."""
    if request.method == "POST":
        request.session["text"] = request.POST.get("text", "")
    return JsonResponse({"text": request.session.get("text"), "key": request.session.session_key, "pid": os.getpid()})

"""A long-lived process of the test project that obeys commands on stdin.

``write <text>`` creates a Persistent row, ``count`` counts them, ``texts``
lists them; each answers one ``@ok <json>`` or ``@error <message>`` line.
"""

from __future__ import annotations

import json
import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from tests.models import Persistent

    print(f"@ready {json.dumps(os.getpid())}", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        try:
            if command == "write":
                value: object = Persistent.objects.create(text=argument).pk
            elif command == "count":
                value = Persistent.objects.count()
            else:
                value = list(Persistent.objects.order_by("id").values_list("text", flat=True))
        except Exception as exc:  # reported to the test, which decides
            print(f"@error {json.dumps(f'{type(exc).__name__}: {exc}')}", flush=True)
        else:
            print(f"@ok {json.dumps(value)}", flush=True)


if __name__ == "__main__":
    main()

"""zlib compression of stored tables, connected through store_save / store_load."""

from __future__ import annotations

import json
import zlib
from typing import Any

from django_memdb.signals import store_load, store_save


def compress(arguments: dict[str, Any]) -> None:
    data = arguments["data"]
    if not isinstance(data, bytes):
        data = json.dumps(data).encode("utf-8")
    arguments["data"] = zlib.compress(data)


def decompress(arguments: dict[str, Any]) -> None:
    arguments["data"] = zlib.decompress(arguments["data"])


def on_save(sender: Any, **kwargs: Any) -> None:
    kwargs["kwargs"]["processors"].append(compress)


def on_load(sender: Any, **kwargs: Any) -> None:
    kwargs["kwargs"]["processors"].append(decompress)


def connect() -> None:
    store_save.connect(on_save, dispatch_uid="tests.processors_zlib")
    store_load.connect(on_load, dispatch_uid="tests.processors_zlib")

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


def decompress_either(arguments: dict[str, Any]) -> None:
    """Reads data stored before compression was added too (it is JSON: it starts with "[")."""
    if not bytes(arguments["data"][:1]) == b"[":
        decompress(arguments)


def on_load_either(sender: Any, **kwargs: Any) -> None:
    kwargs["kwargs"]["processors"].append(decompress_either)


def on_save(sender: Any, **kwargs: Any) -> None:
    kwargs["kwargs"]["processors"].append(compress)


def on_load(sender: Any, **kwargs: Any) -> None:
    kwargs["kwargs"]["processors"].append(decompress)


def connect(load: str = "compressed") -> None:
    """Compress what is stored; read it back as ``compressed``, ``either`` (both kinds) or ``none``."""
    store_save.connect(on_save, dispatch_uid="tests.processors_zlib")
    if load != "none":
        store_load.connect(on_load_either if load == "either" else on_load, dispatch_uid="tests.processors_zlib")

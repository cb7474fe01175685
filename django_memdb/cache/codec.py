"""How cache values are stored: JSON when it gives the value back exactly, else pickle.

JSON values are read back without unpickling anything. Other values are
pickled as Django's own cache backends do, so whoever can write the cache
can run code in the processes that read it: only trusted code may write it.
"""

from __future__ import annotations

import json
import pickle
from json import decoder, encoder, scanner
from typing import Any

JSON = 0
PICKLE = 1

_SCALARS = frozenset((str, int, float, bool, type(None)))
_MAX_DEPTH = 100

# The C encoder and scanner, built once: json.dumps/loads rebuild them per call.
_c_encoder = getattr(encoder, "c_make_encoder", None)
if _c_encoder is not None:
    _encode_chunks = _c_encoder(
        None, None, encoder.encode_basestring, None, ":", ",", False, False, True
    )
else:  # pragma: no cover - CPython always has the C accelerator
    _encode_chunks = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).iterencode


def _dumps(value: Any) -> str:
    return "".join(_encode_chunks(value, 0))

_scan = scanner.make_scanner(decoder.JSONDecoder())  # type: ignore[arg-type]


def json_exact(value: Any, depth: int = 0) -> bool:
    """True when JSON gives ``value`` back equal and of the same types.

    Exact types only: a ``str`` subclass (SafeString), a tuple or a dict with
    keys that are not ``str`` would come back as something else.
    """
    kind = type(value)
    if kind is dict:
        if depth > _MAX_DEPTH:
            return False
        for key, child in value.items():
            if type(key) is not str or (type(child) not in _SCALARS and not json_exact(child, depth + 1)):
                return False
        return True
    if kind is list:
        if depth > _MAX_DEPTH:
            return False
        for child in value:
            if type(child) not in _SCALARS and not json_exact(child, depth + 1):
                return False
        return True
    return kind in _SCALARS


def encode(value: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> tuple[bytes, int]:
    if json_exact(value):
        return _dumps(value).encode("utf-8"), JSON
    return pickle.dumps(value, protocol), PICKLE


def decode(data: bytes, kind: int) -> Any:
    """``kind`` as stored: bits above the lowest are bookkeeping (sqlite_store.COUNTED)."""
    if not kind & PICKLE:
        text = data.decode("utf-8")
        value, end = _scan(text, 0)
        if end != len(text):
            raise ValueError(f"extra data after a JSON cache value at {end}")
        return value
    return pickle.loads(data)

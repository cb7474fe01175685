"""The store_save / store_load processor chains around stored blobs."""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import models

from . import decode_errors, rows, signals
from .conf import conf
from .exceptions import ProcessorError, RestoreError

CODEC_LENGTH = 128


def _target(processor: Callable[..., Any]) -> Any:
    """The function or class that names a processor (a callable object: its class)."""
    while isinstance(processor, functools.partial):
        processor = processor.func
    processor = getattr(processor, "__func__", processor)  # a bound method: its function
    return processor if hasattr(processor, "__qualname__") else type(processor)


def dotted_name(processor: Callable[..., Any]) -> str:
    """``module.qualname`` of a processor, for messages; see ``recorded_name``."""
    target = _target(processor)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def importable(processor: Callable[..., Any]) -> bool:
    """Whether ``dotted_name`` leads back to the processor when imported."""
    target = _target(processor)
    try:
        found: Any = importlib.import_module(target.__module__)
        for part in target.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return getattr(found, "__func__", found) is target  # a classmethod is bound when looked up


def recorded_name(label: str, processor: Callable[..., Any]) -> str:
    """The name ``codec`` records: importable, so that it says which code decodes the blob."""
    name = dotted_name(processor)
    if not importable(processor):
        raise ProcessorError(
            f"{label}: the store_save processor {name} cannot be imported by that name "
            f"(a function defined inside another function, a lambda, or not a module attribute), "
            f"and PersistentStorage.codec records processors by importable dotted name: define it "
            f"at module level (for example in yourapp/processors.py) and append that function. "
            f"Nothing stored was changed."
        )
    return name


def codec_of(processors: Iterable[Callable[..., Any]]) -> str:
    return ",".join(dotted_name(p) for p in processors)[:CODEC_LENGTH]


def _arguments(application: str, modelname: str, data: Any, process: str) -> dict[str, Any]:
    return {
        "data": data,
        "application": application,
        "model": modelname,
        "database": conf.MEMDB_NAME,
        "processors": [],
        "process": process,
    }


def _run(arguments: dict[str, Any], signal: Any, sender: Any, what: str) -> list[Callable[..., Any]]:
    label = f"{arguments['application']}.{arguments['model']}"
    try:
        signal.send(sender=sender, kwargs=arguments)
    except Exception as exc:
        raise ProcessorError(
            f"{label}: a {what} receiver raised {exc!r}; fix or disconnect it."
        ) from exc
    processors = list(arguments["processors"])
    for processor in processors:
        try:
            processor(arguments)
        except Exception as exc:
            raise ProcessorError(
                f"{label}: processor {dotted_name(processor)} raised {exc!r} while "
                f"{what}; fix or disconnect it. Nothing stored was changed."
            ) from exc
    return processors


def listening(model: type[models.Model]) -> bool:
    """Whether a store_save receiver may change what is stored for ``model`` (it needs the items).

    No receiver at all (the common case) is known without has_listeners' lookup.
    """
    signal = signals.store_save
    return bool(signal.receivers) and signal.has_listeners(model)


def encode(model: type[models.Model], items: Iterable[dict[str, Any]]) -> tuple[bytes, str]:
    """The blob and codec to store for ``items`` of ``model``."""
    application, modelname = model._meta.app_label, model.__name__
    if not listening(model):
        return rows.encode_items(items), ""
    if isinstance(items, rows.EncodedLines):  # a receiver connected after the rows were read
        items = items.decoded()
    arguments = _arguments(application, modelname, list(items), conf.MEMDB_PROCESS_ENCODE)
    processors = _run(arguments, signals.store_save, model, "encoding")
    data = arguments["data"]
    if isinstance(data, (bytes, bytearray, memoryview)):
        blob = bytes(data)
    elif isinstance(data, list):
        blob = rows.encode_items(data)
    elif isinstance(data, str):
        blob = json.dumps(data).encode("utf-8")
    else:
        raise ProcessorError(
            f"{application}.{modelname}: the store_save processors returned "
            f"{type(data).__name__}; they must leave bytes, str or a list in "
            f"arguments['data']. Nothing stored was changed."
        )
    label = f"{application}.{modelname}"
    return blob, ",".join(recorded_name(label, p) for p in processors)[:CODEC_LENGTH]


def as_bytes(data: Any) -> bytes:
    """BinaryField values arrive as memoryview on PostgreSQL."""
    if isinstance(data, memoryview):
        return data.obj if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) else data.tobytes()
    return bytes(data) if isinstance(data, bytearray) else data


def decode(
    model: type[models.Model],
    application: str,
    modelname: str,
    data: Any,
    codec: str,
    chunks: Callable[[], Iterable[bytes]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Items stored in a blob; RestoreError says which processors were expected.

    ``data`` may be a callable that fetches the blob; with ``chunks``, a blob
    that no processor needs to see is read in pieces instead.
    """
    label = f"{application}.{modelname}"
    codec = "" if codec == "[]" else codec  # 0.0.6 recorded an empty chain so
    connected: list[Callable[..., Any]] = []

    def failure(problem: str) -> RestoreError:
        stored = decode_errors.stored_by_chain(application, modelname)
        return RestoreError(decode_errors.message(label, problem, codec, codec_of(connected), stored))

    listening = signals.store_load.has_listeners(model)
    if not listening and chunks is not None:
        if codec:
            raise failure("its processors are not connected")
        try:
            yield from rows.iter_chunked_items(chunks())
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise failure(str(exc)) from exc
        return
    blob = as_bytes(data() if callable(data) else data)
    if listening:
        arguments = _arguments(application, modelname, blob, conf.MEMDB_PROCESS_DECODE)
        try:
            connected = _run(arguments, signals.store_load, model, "decoding")
        except ProcessorError as exc:
            connected = list(arguments["processors"])  # those connected, also when one raised
            raise failure(str(exc.__cause__ or exc)) from exc
        data = arguments["data"]
    else:
        data = blob
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            yield from rows.iter_items(as_bytes(data))
            return
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, list):
            raise ValueError(f"the decoded data is {type(data).__name__}, not a list")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise failure(str(exc)) from exc
    yield from data

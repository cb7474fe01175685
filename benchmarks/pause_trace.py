"""Where the long pauses of a purge come from: garbage collections and the library's steps.

Used by ``python -m benchmarks.expiry --trace``. It records, while a purge
runs, every collection of the garbage collector (generation, duration) and
the time spans of the persistence steps (a flush's read and write of a
batch, an online compaction's slices and write), then names, for each read
of the other thread that took long, which of them it overlapped. It also
counts the objects the collector tracks before and after the purge, by type:
a full collection walks all of them, so its length grows with that count.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# (module, function) of the library whose calls are timed: what a slice's commit and a compaction do.
STEPS = (
    ("django_memdb.spool", "_take"),
    ("django_memdb.spool", "_append_held"),
    ("django_memdb.spool", "_settle_now"),
    ("django_memdb.compaction", "_mark"),
    ("django_memdb.compaction", "_read_in_slices"),
    ("django_memdb.compaction", "_write"),
    ("django_memdb.rows", "join_encoded"),
)


def tracked_by_type(top: int = 12) -> tuple[int, list[tuple[str, int]]]:
    """How many objects the collector tracks, and the most frequent types among them."""
    objects = gc.get_objects()
    counts = Counter(type(each).__name__ for each in objects)
    del objects
    return sum(counts.values()), counts.most_common(top)


class Trace:
    """Collections and library steps recorded during a purge (perf_counter times)."""

    def __init__(self) -> None:
        self.collections: list[tuple[int, float, float]] = []  # (generation, start, end)
        self.triggered_by: Counter[tuple[str, int]] = Counter()  # (thread, generation): collections
        self.steps: list[tuple[str, float, float]] = []
        self.slices: list[tuple[int, float, float]] = []  # a purge's slices: (rows, work, held)
        self._started: float | None = None
        self._undo: list[Callable[[], None]] = []

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.collections.append((info["generation"], self._started, time.perf_counter()))
            self.triggered_by[threading.current_thread().name, info["generation"]] += 1
            self._started = None

    def _wrap(self, module: Any, name: str) -> None:
        original = getattr(module, name)
        steps = self.steps
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                steps.append((label, began, time.perf_counter()))

        setattr(module, name, timed)
        self._undo.append(lambda: setattr(module, name, original))

    @contextmanager
    def recording(self) -> Iterator[Trace]:
        import importlib

        for module_name, name in STEPS:
            self._wrap(importlib.import_module(module_name), name)
        from django_memdb import pacing

        measured = pacing.Pacer.measured
        slices = self.slices

        def recorded(pacer: Any, items: int, work: float, held: float | None = None) -> None:
            slices.append((items, work, work if held is None else held))
            measured(pacer, items, work, held)

        pacing.Pacer.measured = recorded  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(pacing.Pacer, "measured", measured))
        gc.callbacks.append(self._on_gc)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._on_gc)
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()

    def overlapping(self, began: float, ended: float) -> list[str]:
        """What ran while a read was under way: collections (gen2 first) and steps."""
        found = [
            f"gen{generation} gc {1000 * (end - start):.1f} ms"
            for generation, start, end in self.collections
            if start < ended and end > began and end - start > 0.001
        ]
        found += [
            f"{label} {1000 * (end - start):.1f} ms"
            for label, start, end in self.steps
            if start < ended and end > began
        ]
        return found

    def summary(self) -> list[str]:
        lines = []
        for generation in (0, 1, 2):
            spans = [end - start for gen, start, end in self.collections if gen == generation]
            if spans:
                lines.append(
                    f"gen{generation}: {len(spans)} collections, total {1000 * sum(spans):.0f} ms, "
                    f"longest {1000 * max(spans):.1f} ms"
                )
        lines.append(
            "collections by the thread whose allocation started them: "
            + ", ".join(f"{name} gen{gen} {count}" for (name, gen), count in sorted(self.triggered_by.items()))
        )
        by_step: dict[str, list[float]] = {}
        for label, start, end in self.steps:
            by_step.setdefault(label, []).append(end - start)
        for label, spans in sorted(by_step.items()):
            lines.append(f"{label}: {len(spans)} calls, longest {1000 * max(spans):.1f} ms")
        if self.slices:
            longest = sorted(self.slices, key=lambda each: each[2])[-3:]
            lines.append(
                f"{len(self.slices)} slices (purge and compaction), longest (rows, work ms, held ms): "
                + ", ".join(f"({rows}, {1000 * work:.1f}, {1000 * held:.1f})" for rows, work, held in longest)
            )
            over = sum(1 for _, _, held in self.slices if held > 0.015)
            lines.append(f"slices held over 15 ms: {over}")
        return lines

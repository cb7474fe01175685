"""What the management commands and the admin report and do, one module per concern.

Everything here works on the in-memory database the calling process sees (its
own in mode ``process``, the host's shared file in mode ``host``, the
server's tables in mode ``cluster``).
"""

from __future__ import annotations

from .compaction import CompactResult, compact
from .formatting import format_age, format_size, plural
from .reading import (
    Progress,
    StoredState,
    label,
    orphan_message,
    orphans,
    progress_to,
    require_storage,
    resolve_models,
    stored_state,
)
from .reload import LoadResult, dry_run, replace
from .status import Status, TableStatus, status
from .verify import TableCheck, verify

__all__ = [
    "CompactResult",
    "LoadResult",
    "Progress",
    "Status",
    "StoredState",
    "TableCheck",
    "TableStatus",
    "compact",
    "dry_run",
    "format_age",
    "format_size",
    "label",
    "orphan_message",
    "orphans",
    "plural",
    "progress_to",
    "replace",
    "require_storage",
    "resolve_models",
    "status",
    "stored_state",
    "verify",
]

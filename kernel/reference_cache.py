"""Per-process copies of data that changes a few times a year, dropped in every process when it changes.

A ``ProcessCache`` holds what its loader returned, tagged with the *version* of its shared key in Django's
cache (Redis in production, so that every worker and Celery process reads the same key; LocMem in tests
and single-process runs). A writer calls ``bump(key)`` — the app's ``post_save``/``post_delete``/
``m2m_changed`` receivers do — which drops this process's copies at once and stores a new random version
under the key, now and again when the writer's transaction commits (another process may have reloaded the
old rows between the two). Every other process sees the new version at its next check and reloads.

When a process checks the shared versions:

- inside a request (between ``request_started`` and ``request_finished``): once per request, on the first
  use of any cache, one ``get_many`` for every key — so a change committed before a request started is
  seen by that request, in whichever process it runs;
- outside a request (Celery tasks, management commands, the shell): at most every
  ``settings.REFERENCE_CACHE_CHECK_SECONDS`` (default 5 s).

``KeyedProcessCache`` is the same by item (API tokens by hash), each entry also bounded by its own TTL.

Whatever the versions say, a copy older than ``settings.REFERENCE_CACHE_MAX_AGE_SECONDS`` (default 600 s)
is reloaded: the bound on staleness should a change bypass the signals (a queryset ``update()``, raw SQL,
a rolled-back transaction that reloaded its own uncommitted rows).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.signals import request_finished, request_started
from django.db import transaction

T = TypeVar("T")
logger = logging.getLogger(__name__)

_PREFIX = "process-cache:"
_state = threading.local()
_registry: list[ProcessCache[Any] | KeyedProcessCache[Any]] = []
_keys: set[str] = set()
_versions_lock = threading.Lock()
# Outside requests: key -> (version, monotonic time it was read), shared by the process's threads.
_checked: dict[str, tuple[str, float]] = {}


def _check_seconds() -> float:
    return float(getattr(settings, "REFERENCE_CACHE_CHECK_SECONDS", 5))


def _max_age_seconds() -> float:
    return float(getattr(settings, "REFERENCE_CACHE_MAX_AGE_SECONDS", 600))


def _shared() -> Any:
    alias = getattr(settings, "REFERENCE_CACHE_ALIAS", "shared")
    return caches[alias if alias in settings.CACHES else "default"]


def _read_shared(keys: Iterable[str]) -> dict[str, str]:
    """The shared versions of ``keys``; a key missing from the cache (first start, eviction, a flush) is
    given a new version, which makes every process reload — never a stale answer. The shared cache
    unreachable: a new version on every read, so every use reloads from the database (slow, never stale)."""
    keys = list(keys)
    try:
        shared = _shared()
        found = shared.get_many([_PREFIX + key for key in keys])
        versions = {}
        for key in keys:
            version = found.get(_PREFIX + key)
            if version is None:
                shared.add(_PREFIX + key, uuid.uuid4().hex, timeout=None)
                version = shared.get(_PREFIX + key) or uuid.uuid4().hex
            versions[key] = version
        return versions
    except Exception:  # the cache server down must not take the service down
        logger.warning("shared cache unreachable: reference data read from the database", exc_info=True)
        return {key: uuid.uuid4().hex for key in keys}


def current_version(key: str) -> str:
    """The shared version of ``key`` as this process sees it now (see the module's docstring for when it asks)."""
    request_versions = getattr(_state, "request_versions", None)
    if request_versions is not None:
        if key not in request_versions:
            request_versions.update(_read_shared(_keys | {key}))
        return request_versions[key]
    now = time.monotonic()
    seen = _checked.get(key)
    if seen is None or now - seen[1] >= _check_seconds():
        with _versions_lock:
            fresh = _read_shared([key])
            _checked[key] = (fresh[key], now)
        return fresh[key]
    return seen[0]


def _store_version(key: str) -> None:
    version = uuid.uuid4().hex
    try:
        _shared().set(_PREFIX + key, version, timeout=None)
    except Exception:  # the other processes reload at the latest after REFERENCE_CACHE_MAX_AGE_SECONDS
        logger.error("shared cache unreachable: could not publish a change of %s", key, exc_info=True)
    _checked.pop(key, None)
    request_versions = getattr(_state, "request_versions", None)
    if request_versions is not None:
        request_versions[key] = version


def bump(key: str) -> None:
    """Drop every copy under ``key`` in every process: this one at once, the others at their next check."""
    for process_cache in _registry:
        if process_cache.key == key:
            process_cache.clear()
    _store_version(key)
    # Another process may reload between this bump and the commit and keep the rows as they were before
    # it: bump again once they are committed.
    transaction.on_commit(lambda: _store_version(key), robust=True)


def bump_receiver(key: str) -> Callable[..., None]:
    """A signal receiver (post_save, post_delete, m2m_changed) that bumps ``key``."""

    def receiver(sender: Any, raw: bool = False, **kwargs: Any) -> None:
        if raw:
            return  # loaddata: the command's end is a restart
        bump(key)

    receiver.__name__ = f"bump_{key}"
    return receiver


class ProcessCache(Generic[T]):
    """``get()`` answers the loader's value, loaded at most once per version of the shared ``key``."""

    def __init__(self, key: str, loader: Callable[[], T]) -> None:
        self.key = key
        self.loader = loader
        self._lock = threading.Lock()
        self._entry: tuple[str, float, T] | None = None
        _registry.append(self)
        _keys.add(key)

    def get(self) -> T:
        version = current_version(self.key)
        entry = self._entry
        if entry is not None and entry[0] == version and time.monotonic() - entry[1] < _max_age_seconds():
            return entry[2]
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == version and time.monotonic() - entry[1] < _max_age_seconds():
                return entry[2]
            # The version is read before the rows: a change committed meanwhile bumps it past this one.
            value = self.loader()
            self._entry = (version, time.monotonic(), value)
            return value

    def clear(self) -> None:
        self._entry = None


class KeyedProcessCache(Generic[T]):
    """Entries by item (e.g. a token's hash), each good while the shared ``key`` keeps the version it was
    loaded under and for at most ``ttl_seconds()``; at most ``max_entries`` (the oldest go first)."""

    def __init__(self, key: str, ttl_seconds: Callable[[], float], max_entries: int = 10_000) -> None:
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, float, T]] = {}
        _registry.append(self)
        _keys.add(key)

    def version(self) -> str:
        """Read before loading an entry and pass to ``put``: a change meanwhile makes the entry stale."""
        return current_version(self.key)

    def get(self, item: str) -> T | None:
        entry = self._entries.get(item)
        if entry is None:
            return None
        if entry[0] != current_version(self.key) or time.monotonic() - entry[1] >= self.ttl_seconds():
            self._entries.pop(item, None)
            return None
        return entry[2]

    def put(self, item: str, value: T, version: str) -> None:
        if len(self._entries) >= self.max_entries:
            for old in list(self._entries)[: max(1, self.max_entries // 10)]:
                self._entries.pop(old, None)
        self._entries[item] = (version, time.monotonic(), value)

    def discard(self, item: str) -> None:
        self._entries.pop(item, None)

    def clear(self) -> None:
        self._entries = {}


def clear_all() -> None:
    """Drop every copy in this process and forget the versions read (tests: a rolled-back test leaves no signal)."""
    for process_cache in _registry:
        process_cache.clear()
    _checked.clear()
    if getattr(_state, "request_versions", None) is not None:
        _state.request_versions = {}


def _on_request_started(**_: Any) -> None:
    _state.request_versions = {}


def _on_request_finished(**_: Any) -> None:
    _state.request_versions = None


request_started.connect(_on_request_started, dispatch_uid="kernel_process_cache_request_started")
request_finished.connect(_on_request_finished, dispatch_uid="kernel_process_cache_request_finished")

"""Lock-scope tests on PostgreSQL: hold one transaction open in another connection, then act under a timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections, transaction


@contextmanager
def held_open(action: Callable[[], Any]) -> Iterator[None]:
    """Run ``action`` in a transaction on another thread (its own connection) and keep that transaction
    open, with every lock it took, until the ``with`` block ends; then let it commit and re-raise its error."""
    done, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                action()
                done.set()
                release.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
            done.set()
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert done.wait(timeout=30) and not errors, errors
        yield
    finally:
        release.set()
        holder.join(timeout=30)
    if errors:
        raise errors[0]


@contextmanager
def lock_timeout(seconds: int) -> Iterator[None]:
    """A transaction in which any lock wait longer than ``seconds`` fails instead of waiting."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(seconds)}s'")
        yield

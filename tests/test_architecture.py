"""The thin layers stay thin: views, API views, serializers, forms and tasks never write to the
database themselves, they call a service (docs/architecture.md, "Who may write").

Every such module of every app is parsed (never imported) and searched for
``<Model>.objects.<create|update|delete|bulk_create|bulk_update|get_or_create|update_or_create>(…)``
(also through ``.filter(…)`` chains and the default managers), ``.save(…)`` and ``.delete(…)`` calls,
and ``connection.cursor`` / ``connections[…].cursor``. The layer contracts themselves (which app may
import which) are checked by import-linter (``lint-imports``, run by ``make test``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIN_MODULES = ("views", "api", "serializers", "forms", "tasks")
MANAGER_WRITES = frozenset(
    {"create", "update", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
)
MANAGERS = frozenset({"objects", "_default_manager", "_base_manager"})
INSTANCE_WRITES = frozenset({"save", "delete"})

# Genuine exceptions, each as (path relative to the repository, line's call text) with the reason.
# Empty: every write of a thin module goes through a service. Add an entry only with a comment that
# says why the write cannot live in a service.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _apps() -> list[Path]:
    return sorted(path.parent for path in ROOT.glob("*/apps.py"))


def _thin_modules() -> list[Path]:
    """views.py, api.py, … of every app, and every module of a views/, api/, … package."""
    found: list[Path] = []
    for app in _apps():
        for path in sorted(app.rglob("*.py")):
            relative = path.relative_to(app).parts
            if "migrations" in relative:
                continue
            if path.stem in THIN_MODULES or any(part in THIN_MODULES for part in relative[:-1]):
                found.append(path)
    return found


def _through_manager(node: ast.expr) -> bool:
    """Whether an attribute/call chain passes through ``.objects`` (``Model.objects.filter(…).update``)."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr in MANAGERS:
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def _is_connection(node: ast.expr) -> bool:
    if isinstance(node, ast.Subscript):  # connections["default"]
        node = node.value
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("connection", "connections")


def writes_in(source: str) -> Iterator[tuple[int, str]]:
    """(line, call text) of every database write or raw cursor found in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in MANAGER_WRITES and _through_manager(node.func.value):
                yield node.lineno, ast.unparse(node.func)
            elif attr in INSTANCE_WRITES:
                yield node.lineno, ast.unparse(node.func)
        elif isinstance(node, ast.Attribute) and node.attr == "cursor" and _is_connection(node.value):
            yield node.lineno, ast.unparse(node)


def test_the_scan_covers_every_app_and_its_thin_modules():
    apps = {path.name for path in _apps()}
    assert {"enrollment", "reviews", "interop", "nhsa", "kernel", "demo"} <= apps
    scanned = {str(path.relative_to(ROOT)) for path in _thin_modules()}
    for expected in ("enrollment/views.py", "enrollment/api.py", "enrollment/tasks.py", "reviews/serializers.py"):
        assert expected in scanned


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("Person.objects.create(name='x')", "Person.objects.create"),
        ("Application.objects.filter(pk=1).update(state='x')", "Application.objects.filter(pk=1).update"),
        ("Reminder._default_manager.bulk_create(rows)", "Reminder._default_manager.bulk_create"),
        ("Disease.objects.all().get_or_create(code='M1')", "Disease.objects.all().get_or_create"),
        ("Token.objects.filter(user=u).delete()", "Token.objects.filter(user=u).delete"),
        ("application.save(update_fields=['state'])", "application.save"),
        ("token.delete()", "token.delete"),
        ("with connection.cursor() as cursor:\n    pass", "connection.cursor"),
        ("connections['default'].cursor()", "connections['default'].cursor"),
    ],
)
def test_the_scan_finds_each_kind_of_write(source: str, found: str):
    assert [text for _, text in writes_in(source)] == [found]


@pytest.mark.parametrize(
    "source",
    [
        "Person.objects.filter(pk=1).first()",  # a read
        "context.update(extra)",  # a dict, not a manager
        "services.application_submit(person=p, actor=user)",
        "cursor = request.GET.get('cursor')",  # keyset pagination's cursor, not a database cursor
    ],
)
def test_the_scan_leaves_reads_and_service_calls_alone(source: str):
    assert list(writes_in(source)) == []


def test_thin_modules_call_services_for_every_write():
    offences = []
    for path in _thin_modules():
        relative = str(path.relative_to(ROOT))
        for line, text in writes_in(path.read_text(encoding="utf-8")):
            if (relative, text) not in ALLOWED:
                offences.append(f"{relative}:{line}: {text}")
    assert offences == [], "views, API views, serializers, forms and tasks call a service to write:\n" + "\n".join(
        offences
    )


# Services queue tasks by name (kernel.task_queue) so that they never import their tasks module back.


def _enqueued_task_names() -> set[str]:
    names = set()
    for app in _apps():
        for path in app.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "enqueue"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    names.add(node.args[0].value)
    return names


def test_every_task_a_service_queues_by_name_is_registered():
    from celery import current_app

    names = _enqueued_task_names()
    assert {"enrollment.tasks.send_reminder", "interop.tasks.run_roster_import", "nhsa.tasks.deliver"} <= names
    assert sorted(name for name in names if name not in current_app.tasks) == []


def test_enqueue_runs_the_registered_task_and_refuses_an_unknown_name(monkeypatch):
    from celery import current_app

    from kernel.task_queue import enqueue

    sent = []
    monkeypatch.setattr(current_app.tasks["nhsa.tasks.deliver"], "delay", lambda *args: sent.append(args))
    enqueue("nhsa.tasks.deliver", 42)
    assert sent == [(42,)]
    with pytest.raises(LookupError, match="AppConfig.ready"):
        enqueue("nhsa.tasks.no_such_task", 1)

"""What the assistance app does when enrollment records something about a person."""

from __future__ import annotations

from typing import Any

from kernel import roles


def on_categories_recorded(*, person: Any, periods: list[Any], actor: roles.Actor) -> None:
    """A support category recognised from a date: list the retroactive assistance for the costs settled in the
    policy's window before it. Runs inside the recognising transaction, so recognition and listing commit
    together; the unique (settlement, recognition) key keeps the listing to once."""
    from assistance import services

    services.retroactive_assistance(recognition_ids=[p.pk for p in periods], actor=services.system_user())

"""Exports of a working list: handing out full ID numbers is written to the access log, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from enrollment.services.access import personal_data_access_record_many
from kernel import roles


def application_list_export_rows(
    *, actor: roles.Actor, chunks: Iterable[list[tuple[int | None, Sequence[Any]]]], reason: str
) -> Iterator[Sequence[Any]]:
    """The export's rows, lazily. Each chunk is (person id if that row carries a full ID number, row): before a
    chunk is handed out, one access-log row (purpose ``export_full_id``) per person in it not yet logged by this
    export is written in one bulk insert. A masked row writes nothing."""
    from enrollment.models import AccessPurpose

    logged: set[int] = set()
    for chunk in chunks:
        persons = [pid for pid in dict.fromkeys(pid for pid, _row in chunk if pid is not None) if pid not in logged]
        if persons:
            personal_data_access_record_many(
                viewer=actor, person_ids=persons, purpose=AccessPurpose.EXPORT_FULL_ID, reason=reason
            )
            logged.update(persons)
        for _pid, row in chunk:
            yield row

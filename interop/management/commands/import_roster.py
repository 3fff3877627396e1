from typing import Any

from interop import selectors, services
from interop.models import RosterImport
from kernel import roles
from kernel.uploads import StoredImportCommand


class Command(StoredImportCommand):
    help = (
        "Import a roster of monitored people (CSV in UTF-8/GBK, or XLSX): a dry run with a per-row report, "
        "and with --commit, persons registered and eligible people put on the assisted-filing worklist."
    )

    def create(self, *, name: str, content: bytes, actor: roles.Actor) -> RosterImport:
        return services.roster_import_create(name=name, content=content, actor=actor, queue=False)

    def run(self, import_id: int) -> RosterImport | None:
        return services.roster_import_run(import_id=import_id)

    def request_commit(self, *, import_id: int, actor: roles.Actor) -> None:
        services.roster_import_request_commit(import_id=import_id, actor=actor, queue=False)

    def summarise(self, result: Any) -> None:
        counts = result.counts
        self.stdout.write(
            f"Roster import #{result.pk} ({result.state}): {counts['lines']} lines, {counts['entries']} entries"
        )
        for status, n in counts["by_status"].items():
            self.stdout.write(f"  {status:18} {n}")
        for action, n in counts.get("by_action", {}).items():
            self.stdout.write(f"  {action:18} {n}")

    def report_rows(self, result: Any) -> tuple[tuple[str, ...], Any]:
        return selectors.ROSTER_REPORT_HEADER, selectors.roster_report_rows(result)

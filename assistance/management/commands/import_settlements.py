from typing import Any

from assistance import services
from assistance.models import SettlementImport
from kernel import roles
from kernel.uploads import StoredImportCommand

REPORT_HEADER = ("line", "serial_number", "status", "reason_code", "message")


class Command(StoredImportCommand):
    help = (
        "Import monthly settlement data (CSV in UTF-8/GBK, or XLSX): a dry run with a per-row report, and with "
        "--commit the new settlements stored (idempotent by serial number) and their assistance computed."
    )

    def create(self, *, name: str, content: bytes, actor: roles.Actor) -> SettlementImport:
        return services.settlement_import_create(name=name, content=content, actor=actor, queue=False)

    def run(self, import_id: int) -> SettlementImport | None:
        return services.settlement_import_run(import_id=import_id)

    def request_commit(self, *, import_id: int, actor: roles.Actor) -> None:
        services.settlement_import_request_commit(import_id=import_id, actor=actor, queue=False)

    def summarise(self, result: Any) -> None:
        counts = result.counts
        self.stdout.write(f"Settlement import #{result.pk} ({result.state}): {counts['lines']} lines")
        for status, n in sorted(counts["by_status"].items()):
            self.stdout.write(f"  {status:12} {n}")
        if "created" in counts:
            self.stdout.write(f"  stored       {counts['created']}")

    def report_rows(self, result: Any) -> tuple[tuple[str, ...], Any]:
        rows = result.rows.order_by("line", "pk").values_list(*REPORT_HEADER)
        return REPORT_HEADER, rows.iterator(chunk_size=5000)

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrollment.services import get_system_user
from interop import services
from kernel.errors import DomainError


class Command(BaseCommand):
    help = (
        "Compare a new version of the disease catalogue (JSON in the bundled shape, or CSV) with the one in use "
        "and print the diff. --apply applies it: removed diseases are deactivated, never deleted; "
        "--terminate-enrollments also ends their approved/expiring enrollments (reason disease_removed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument(
            "--catalogue-version", dest="catalogue_version", help="version label (needed for CSV without one)"
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", default=True, help="show the diff only (default)")
        mode.add_argument("--apply", action="store_true")
        parser.add_argument("--terminate-enrollments", action="store_true")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the diff as JSON")

    def handle(
        self,
        *args: Any,
        path: str,
        catalogue_version: str | None,
        apply: bool,
        terminate_enrollments: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        if terminate_enrollments and not apply:
            raise CommandError("--terminate-enrollments needs --apply.")
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        actor = get_system_user()
        try:
            record = services.catalogue_import_create(
                name=Path(path).name, content=content, actor=actor, version=catalogue_version
            )
        except DomainError as exc:
            for error in exc.details.get("errors", []):
                self.stderr.write(f"  {error}")
            raise CommandError(str(exc.message))
        self._print_diff(record.diff, as_json=as_json)
        if not apply:
            self.stdout.write(f"Dry run: nothing changed. Apply with --apply (catalogue import #{record.pk}).")
            return
        try:
            result = services.catalogue_import_apply(
                import_id=record.pk, actor=actor, terminate_enrollments=terminate_enrollments
            )
        except DomainError as exc:
            raise CommandError(str(exc.message))
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue {result['version']} applied: {result['added']} added, {result['changed']} changed, "
                f"{result['deactivated']} deactivated, {result['terminated']} enrollments terminated."
            )
        )
        for refused in result["not_terminated"]:
            self.stderr.write(f"  not terminated: application #{refused['application']}: {refused['message']}")

    def _print_diff(self, diff: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(diff, ensure_ascii=False, indent=1, default=str))
            return
        self.stdout.write(f"Catalogue version {diff['version']}: {diff['unchanged']} unchanged")
        for item in diff["added"]:
            self.stdout.write(f"  + {item['code']} {item['name']} (type {item['type']})")
        for item in diff["changed"]:
            self.stdout.write(f"  ~ {item['code']} {item['name']}")
            for field, (old, new) in item["fields"].items():
                self.stdout.write(f"      {field}: {old!r} → {new!r}")
        for item in diff["removed"]:
            self.stdout.write(
                f"  - {item['code']} {item['name']}: {item['enrollments']} enrollments, "
                f"{item['pending_applications']} pending applications"
            )

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrollment import services
from kernel.errors import DomainError

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "catalogue.json"


class Command(BaseCommand):
    help = "Load (create or update) the disease catalogue from a JSON file (default: the bundled catalogue)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH))

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read catalogue {path}: {exc}")
        try:
            result = services.catalogue_load(data=data, actor=services.get_system_user())
        except DomainError as exc:
            raise CommandError(str(exc.message))
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue {result['version']}: {result['created']} diseases created, {result['updated']} updated."
            )
        )

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from demo import seed as demo


class Command(BaseCommand):
    help = "Create demo regions, institutions, physicians, one user per role and a few dozen applications."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default="demo-pass-2026", help="Password for every demo user.")
        parser.add_argument("--applications", type=int, default=36, help="How many demo applications to file.")

    def handle(self, *args: Any, password: str, applications: int, **options: Any) -> None:
        call_command("load_catalogue", verbosity=0)
        result = demo.seed_all(password=password, applications=applications)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({result['applications']} applications filed)."))
        self.stdout.write(f"Demo logins (password for all: {password}):")
        for username, role, place in result["users"]:
            self.stdout.write(f"  {username:<16} {role:<15} {place}")

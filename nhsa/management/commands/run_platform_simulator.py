import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from nhsa.envelope import CRYPTO_CHOICES, CRYPTO_SM4SM2
from nhsa.simulator import Simulator


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(value)
    return rate


class Command(BaseCommand):
    help = (
        "Run a stand-in for the national medical-insurance platform (1101, 2503, 2504, 5301, 9001) with its own "
        "SQLite store, for the demo and for trying the outbox against faults (docs/platform.md, 'Simulator'). "
        "Faults can also be changed while it runs: POST /__control."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090; 0: any free one)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument(
            "--store", help="its SQLite file (default var/platform-simulator.sqlite3); kept across restarts"
        )
        parser.add_argument("--latency", type=int, default=0, metavar="MS", help="delay before every answer")
        parser.add_argument("--fail-rate", type=_rate, default=0.0, metavar="P", help="share of HTTP 500 answers")
        parser.add_argument(
            "--duplicate-rate",
            type=_rate,
            default=0.0,
            metavar="P",
            help="share of filings/cancellations done but answered as a repeat ('already filed/cancelled')",
        )
        parser.add_argument(
            "--timeout-seconds",
            type=float,
            default=65.0,
            help="how long a scripted timeout (POST /__control {'timeout_next': n}) sleeps (default 65)",
        )
        parser.add_argument(
            "--crypto",
            choices=CRYPTO_CHOICES,
            default=None,
            help="none or sm4sm2 (default: PLATFORM_CRYPTO); sm4sm2 uses PLATFORM_SM4_KEY and PLATFORM_SM2_PUBLIC_KEY",
        )
        parser.add_argument(
            "--private-key",
            default=os.environ.get("PLATFORM_SIMULATOR_SM2_PRIVATE_KEY", ""),
            help="the simulator's own SM2 private key, hex (default: $PLATFORM_SIMULATOR_SM2_PRIVATE_KEY, else a "
            "new one each start); its public key is printed: set it as PLATFORM_SM2_PLATFORM_PUBLIC_KEY",
        )
        parser.add_argument("--persons", metavar="FILE", help="JSON list of {certno, psn_no, psn_name, insutype, …}")
        parser.add_argument(
            "--auto-persons",
            action="store_true",
            help="answer an unknown 身份证号 with a psn_no derived from it (the demo works without seeding)",
        )
        parser.add_argument(
            "--signin-required",
            action="store_true",
            default=None,
            help="refuse messages without today's 9001 sign_no (default: PLATFORM_SIGNIN_REQUIRED)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        crypto = options["crypto"] or settings.PLATFORM_CRYPTO
        signin_required = options["signin_required"]
        if signin_required is None:
            signin_required = settings.PLATFORM_SIGNIN_REQUIRED
        store = options["store"] or str(settings.VAR_DIR / "platform-simulator.sqlite3")
        try:
            simulator = Simulator(
                store,
                host=options["host"],
                port=options["port"],
                latency_ms=options["latency"],
                fail_rate=options["fail_rate"],
                duplicate_rate=options["duplicate_rate"],
                timeout_seconds=options["timeout_seconds"],
                auto_persons=options["auto_persons"],
                signin_required=signin_required,
                crypto=crypto,
                sm4_key=settings.PLATFORM_SM4_KEY if crypto == CRYPTO_SM4SM2 else "",
                client_public_key=settings.PLATFORM_SM2_PUBLIC_KEY if crypto == CRYPTO_SM4SM2 else "",
                private_key=options["private_key"] if crypto == CRYPTO_SM4SM2 else "",
            )
            seeded = simulator.load_persons(options["persons"]) if options["persons"] else 0
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot start the platform simulator: {exc}")
        url = simulator.start()
        self.stdout.write(
            f"Platform simulator at {url} (store {store}; crypto {crypto}; "
            f"auto persons {'on' if options['auto_persons'] else 'off'}; "
            f"sign-in {'required' if signin_required else 'not required'}; {seeded} persons seeded)"
        )
        if simulator.public_key:
            self.stdout.write(f"Its SM2 public key (PLATFORM_SM2_PLATFORM_PUBLIC_KEY): {simulator.public_key}")
        self.stdout.write(f'Faults at run time: POST {url}__control, e.g. {{"fail_next": 3}}')
        self.stdout.flush()
        # honcho and process managers stop it with SIGTERM: close the store cleanly.
        signal.signal(signal.SIGTERM, lambda *_: simulator.request_stop())
        simulator.serve_forever()

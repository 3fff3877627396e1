"""Settings for the chronic- and special-disease enrollment service (门诊慢特病 备案).

Everything that differs between machines comes from the environment, read by the
small typed helpers below; defaults give a working development set-up with no servers
(SQLite and a filesystem broker).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# "production" makes every insecure default an error instead of a convenience.
DJANGO_ENV = env_str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", "" if PRODUCTION else _DEV_SECRET_KEY)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters when DJANGO_ENV=production."
    )

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # its table only: migration enrollment 0010 moved the keys into ApiToken
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "kernel",
    "enrollment",
    "reviews",
    "interop",
    "nhsa",
    "assistance",
    "oversight",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (app CSS/JS, Swagger UI, admin) are served by the application itself: no CDN, no
    # separate web server needed. In production run `manage.py collectstatic` after each deploy.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Issue 18: `Cache-Control: no-store` on /api/ and logged-in responses (outermost after the static files, so
    # it sees every view's own caching); then a NUL character in any text input is a 400 before anything reads it.
    "config.cache_control.NoStoreMiddleware",
    "kernel.input_guard.RejectNulInputMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout flagged during authentication into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # transactions take the write lock up front instead of failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("SQLITE_TEST_NAME", "") or None
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out user name + address before any password is checked (django-axes).
    "config.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = DEBUG
if not PRODUCTION:
    # whitenoise looks in STATIC_ROOT too; in development it is empty until someone runs collectstatic.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# Uploaded evidence (diagnosis certificates, test reports).
DOCUMENT_MAX_BYTES = env_int("DOCUMENT_MAX_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Idempotency-Key (issue 18 item 4): a key whose first request has been "in progress" this long is taken as
# abandoned (its process died before it could answer) and may be used again. Keep it above the longest request.
IDEMPOTENCY_IN_PROGRESS_SECONDS = env_int("IDEMPOTENCY_IN_PROGRESS_SECONDS", 120)
# Sample re-checks and public notices (docs/reviews.md, "Oversight"): the re-check rate where no region sets one,
# and how many requests a minute one address may make to the public notice pages.
OVERSIGHT_RECHECK_PERCENT = env_str("OVERSIGHT_RECHECK_PERCENT", "10")
# A failed re-check returned to the clinic for correction: calendar days it has to answer before the system terminates
# the enrollment, and how many days before that it is reminded once (0: no reminder).
OVERSIGHT_CORRECTION_DAYS = env_int("OVERSIGHT_CORRECTION_DAYS", 15)
OVERSIGHT_CORRECTION_REMINDER_DAYS = env_int("OVERSIGHT_CORRECTION_REMINDER_DAYS", 3)
if OVERSIGHT_CORRECTION_DAYS < 1 or not 0 <= OVERSIGHT_CORRECTION_REMINDER_DAYS < OVERSIGHT_CORRECTION_DAYS:
    raise ImproperlyConfigured(
        "OVERSIGHT_CORRECTION_DAYS must be at least 1 and OVERSIGHT_CORRECTION_REMINDER_DAYS between 0 and one less."
    )
PUBLIC_NOTICE_REQUESTS_PER_MINUTE = env_int("PUBLIC_NOTICE_REQUESTS_PER_MINUTE", 60)

# API tokens (enrollment.models.ApiToken, issue 18 item 8): each lives this long after it is issued, and a
# password change or deactivation revokes it. 24 h: a leaked token is worth one day at most, yet a day's work or
# a nightly job runs on one token; a client that needs another asks POST /api/v1/auth/token/ again.
API_TOKEN_LIFETIME_HOURS = env_int("API_TOKEN_LIFETIME_HOURS", 24)
if API_TOKEN_LIFETIME_HOURS < 1:
    raise ImproperlyConfigured("API_TOKEN_LIFETIME_HOURS must be at least 1.")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Hashed, expiring tokens (enrollment.models.ApiToken), with the staff profile in the same query.
        "enrollment.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "kernel.api_support.StandardPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "kernel.api_support.exception_handler",
    # DRF's three, with a nesting limit on JSON (kernel.input_guard: too deep is a 400, not a RecursionError).
    "DEFAULT_PARSER_CLASSES": [
        "kernel.input_guard.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    # Swagger UI's own files come from the installed sidecar package: these networks are closed, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "Chronic & special-disease enrollment API (门诊慢特病 备案)",
    "DESCRIPTION": "Persons, diseases, applications and their transitions, reviews and coverage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # OpenAPI links of the filing workflow (config/schema.py), followed by the stateful schemathesis run.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.schema.add_links"],
    # One name per shared choice set (else `check --deploy --fail-level WARNING` fails on drf_spectacular.W001).
    "ENUM_NAME_OVERRIDES": {
        "InstitutionLevelEnum": "enrollment.models.InstitutionLevel",
        "TerminationReasonEnum": "enrollment.models.TerminationReason",
        "ManualTerminationReasonEnum": "enrollment.models.MANUAL_TERMINATION_CHOICES",
        "ApplicationStateEnum": "enrollment.models.State",
        "BatchStateEnum": "reviews.models.BatchState",
        "ReminderStatusEnum": "enrollment.models.ReminderStatus",
        "ReminderChannelEnum": "enrollment.models.ReminderChannel",
        "SupportCategoryEnum": "enrollment.models.SupportCategory",
        "StatusEventKindEnum": "enrollment.models.StatusEventKind",
        "ApplicationKindEnum": "enrollment.models.ApplicationKind",
        "ObjectionChannelEnum": "oversight.models.ObjectionChannel",
        "RecheckSampleKindEnum": "oversight.models.SampleKind",
        "RecheckStateEnum": "oversight.models.RecheckState",
        "RecheckCorrectionEnum": "oversight.models.Correction",
        "CorrectionRequestStateEnum": "oversight.models.CorrectionState",
        "SupplementReasonEnum": "reviews.models.SupplementReason",
    },
}

# Caches. "default" is per process. "shared" holds what every process must agree on — the versions of the
# per-process copies of reference data and API tokens (kernel.reference_cache) — so it is Redis when
# REDIS_URL is set; without Redis (one process: tests, development) a LocMem of its own.
_REDIS_FOR_CACHE = env_str("REDIS_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_FOR_CACHE, "KEY_PREFIX": "ce"}
        if _REDIS_FOR_CACHE
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}
    ),
}
# kernel.reference_cache: outside a request a process asks the shared versions at most this often (inside a
# request: once per request); any copy older than the second setting is reloaded whatever the versions say.
REFERENCE_CACHE_CHECK_SECONDS = env_int("REFERENCE_CACHE_CHECK_SECONDS", 5)
REFERENCE_CACHE_MAX_AGE_SECONDS = env_int("REFERENCE_CACHE_MAX_AGE_SECONDS", 600)
# enrollment.authentication: how long a process reuses a token it has read (revocation, a password change or
# deactivation through the application, or a change of the user's roles drops it at once in every process).
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 60)

# Celery: Redis when REDIS_URL is set; otherwise an embedded filesystem broker so that a
# worker and beat still run on one machine with no server.
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    # With a host in the URL: kombu warns "No hostname was supplied" on every connection it opens or clones
    # (each worker and beat start, each task queued) when the URL has none; the folders below are the broker.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ROUTES = {
    "reviews.tasks.*": {"queue": "batch"},
    "enrollment.tasks.sweep_*": {"queue": "batch"},
    "enrollment.tasks.send_*": {"queue": "reminders"},
    "nhsa.tasks.*": {"queue": "default"},
}
# Beat only scans the database; it never schedules far-future ETA tasks (docs/design.md: Runtime rules).
CELERY_BEAT_SCHEDULE = {
    # Runs daily; each region's batch is assembled on its policy's batch day (default the 1st).
    "monthly-review-batches": {
        "task": "reviews.tasks.assemble_due_batches",
        "schedule": crontab(hour=2, minute=0),
    },
    # A batch a dead worker left half-assembled (no chunk for REVIEW_BATCH_RESUME_AFTER_MINUTES) is sent again,
    # instead of waiting for Redis to redeliver the killed task after its visibility timeout (an hour): resumed
    # within 10 + 5 = 15 minutes of its last chunk.
    "resume-stalled-batches": {
        "task": "reviews.tasks.resume_stalled_batches",
        "schedule": crontab(minute="*/5"),
    },
    "daily-validity-sweep": {
        "task": "enrollment.tasks.sweep_validity",
        "schedule": crontab(hour=1, minute=0),
    },
    # Roster imports whose task was lost (broker down at upload, or restarted without persistence).
    "requeue-roster-imports": {
        "task": "interop.tasks.requeue_roster_imports",
        "schedule": crontab(minute="*/10"),
    },
}
# The national platform outbox (docs/platform.md): due and stale messages every minute; 5301 nightly.
CELERY_BEAT_SCHEDULE["platform-outbox"] = {"task": "nhsa.tasks.deliver_due", "schedule": crontab(minute="*")}
CELERY_BEAT_SCHEDULE["platform-reconcile"] = {
    "task": "nhsa.tasks.reconcile_all",
    "schedule": crontab(hour=3, minute=30),
}
# Delivery attempts of one platform message before it is left failed for an officer (back-off 1, 2, 4 … 60 min),
# and how long a row may stay "sending" before beat counts its worker as dead and sends it again (same msgid).
PLATFORM_MAX_ATTEMPTS = env_int("PLATFORM_MAX_ATTEMPTS", 20)
PLATFORM_SENDING_STALE_SECONDS = env_int("PLATFORM_SENDING_STALE_SECONDS", 300)
# Costs and assistance (docs/assistance.md): last month's assistance computed and high-cost alerts scanned on the 2nd
# (settlement data of a month arrive in its first days; the command assistance_alerts --period reruns any month).
CELERY_BEAT_SCHEDULE["monthly-cost-alerts"] = {
    "task": "assistance.tasks.monthly_cost_alerts",
    "schedule": crontab(day_of_month=2, hour=4, minute=0),
}
# Sample re-checks (docs/reviews.md, "Oversight"): last month's low-review approvals drawn once per region; run daily
# so that a missed day catches up (a completed draw is never redone).
CELERY_BEAT_SCHEDULE["recheck-draws"] = {
    "task": "oversight.tasks.draw_rechecks",
    "schedule": crontab(hour=2, minute=45),
}
# Re-check corrections returned to the clinic: reminded once, and terminated when not answered in time (daily).
CELERY_BEAT_SCHEDULE["recheck-corrections"] = {
    "task": "oversight.tasks.sweep_corrections",
    "schedule": crontab(hour=2, minute=50),
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Roster imports (issue 18 item 6): the upload request only stores the file; the Celery task reads it, with
# these bounds. More rows (after the header; empty rows do not count) fail the import ("split the file");
# reading the file may take ROSTER_READ_SECONDS, a whole phase (dry run or commit) ROSTER_TASK_SECONDS
# (the task's soft time limit; the worker process is killed a minute later if it is still busy).
ROSTER_MAX_ROWS = env_int("ROSTER_MAX_ROWS", 200_000)
ROSTER_MAX_BYTES = env_int("ROSTER_MAX_BYTES", 50 * 1024 * 1024)
ROSTER_READ_SECONDS = env_int("ROSTER_READ_SECONDS", 120)
ROSTER_TASK_SECONDS = env_int("ROSTER_TASK_SECONDS", 1800)

# The "system" actor recorded in the audit trail for beat jobs.
SYSTEM_USERNAME = "system"

# The national medical-insurance platform link (issue 13, nhsa.client; docs/platform.md). PLATFORM_URL empty: the
# loop is off and nothing is queued. The sender is the insurance office's agency code (12 characters: msgids are
# code + yyyyMMddHHmmss + 4 digits). PLATFORM_CRYPTO "sm4sm2": SM4-encrypted input/output and SM2 signatures, with
# our key pair (hex), the shared SM4 key (hex, 16 bytes) and the platform's public key to verify its answers.
PLATFORM_URL = env_str("PLATFORM_URL", "")
PLATFORM_FIXMEDINS_CODE = env_str("PLATFORM_FIXMEDINS_CODE", "")
PLATFORM_FIXMEDINS_NAME = env_str("PLATFORM_FIXMEDINS_NAME", "")
PLATFORM_OPTER = env_str("PLATFORM_OPTER", "enrollment")
PLATFORM_OPTER_NAME = env_str("PLATFORM_OPTER_NAME", "门慢特病备案系统")
PLATFORM_INSU_ADMDVS = env_str("PLATFORM_INSU_ADMDVS", "")
PLATFORM_INFVER = env_str("PLATFORM_INFVER", "V1.0")
PLATFORM_RECER_SYS_CODE = env_str("PLATFORM_RECER_SYS_CODE", "MBS_LOCAL")
PLATFORM_TIMEOUT = env_int("PLATFORM_TIMEOUT", 30)
PLATFORM_SIGNIN_REQUIRED = env_bool("PLATFORM_SIGNIN_REQUIRED", False)
PLATFORM_CRYPTO = env_str("PLATFORM_CRYPTO", "none").lower()
if PLATFORM_CRYPTO not in {"none", "sm4sm2"}:
    raise ImproperlyConfigured(f"PLATFORM_CRYPTO must be none or sm4sm2, got {PLATFORM_CRYPTO!r}")
PLATFORM_SM4_KEY = env_str("PLATFORM_SM4_KEY", "")
PLATFORM_SM2_PRIVATE_KEY = env_str("PLATFORM_SM2_PRIVATE_KEY", "")
PLATFORM_SM2_PUBLIC_KEY = env_str("PLATFORM_SM2_PUBLIC_KEY", "")
PLATFORM_SM2_PLATFORM_PUBLIC_KEY = env_str("PLATFORM_SM2_PLATFORM_PUBLIC_KEY", "")

# Expiry reminders (docs/design.md: Validity, renewal and reminders): SMS to the patient through a pluggable
# backend, e-mail to the filing clinic.
SMS_BACKEND = env_str("SMS_BACKEND", "enrollment.notifications.LogSMSBackend")
SMS_GATEWAY_URL = env_str("SMS_GATEWAY_URL", "")
SMS_GATEWAY_TOKEN = env_str("SMS_GATEWAY_TOKEN", "")
SMS_GATEWAY_TIMEOUT = env_int("SMS_GATEWAY_TIMEOUT", 10)
REMINDER_MAX_ATTEMPTS = env_int("REMINDER_MAX_ATTEMPTS", 5)
VALIDITY_SWEEP_CHUNK_SIZE = env_int("VALIDITY_SWEEP_CHUNK_SIZE", 1000)
# The sweep refreshes the reminder table's planner statistics after writing at least this many rows (PostgreSQL).
REMINDER_ANALYZE_AFTER_ROWS = env_int("REMINDER_ANALYZE_AFTER_ROWS", 5000)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@enrollment.invalid")

# Reviews (docs/design.md: Reviews): default stages per disease type (a disease's own review_stages override them),
# how long a claimed queue item stays with its reviewer, and the batch-assembly chunk size.
REVIEW_STAGES = {"11": ["initial_review"], "12": ["initial_review", "recheck", "approval"]}
REVIEW_LEASE_MINUTES = env_int("REVIEW_LEASE_MINUTES", 30)
REVIEW_BATCH_CHUNK_SIZE = env_int("REVIEW_BATCH_CHUNK_SIZE", 1000)
# A batch with no chunk committed for this long counts as abandoned by a dead worker and is resumed by beat
# (resume-stalled-batches, every 5 minutes). A live run commits a chunk every few seconds.
REVIEW_BATCH_RESUME_AFTER_MINUTES = env_int("REVIEW_BATCH_RESUME_AFTER_MINUTES", 10)
# 补正 (docs/reviews.md): calendar days a clinic has to answer before the system withdraws the application, and
# how many days before that it is reminded once (0: no reminder) — for regions without a 补正 policy row.
REVIEW_SUPPLEMENT_ANSWER_DAYS = env_int("REVIEW_SUPPLEMENT_ANSWER_DAYS", 30)
REVIEW_SUPPLEMENT_REMINDER_DAYS = env_int("REVIEW_SUPPLEMENT_REMINDER_DAYS", 7)
# Working days (reviews.workdays): a date in a year neither chinese-calendar nor the calendar-days table knows is
# counted Monday–Friday and marked provisional ("warn"), or refused ("error").
WORKING_CALENDAR_UNKNOWN_YEAR = env_str("WORKING_CALENDAR_UNKNOWN_YEAR", "warn").lower()
if WORKING_CALENDAR_UNKNOWN_YEAR not in {"warn", "error"}:
    raise ImproperlyConfigured(
        f"WORKING_CALENDAR_UNKNOWN_YEAR must be warn or error, got {WORKING_CALENDAR_UNKNOWN_YEAR!r}"
    )
# Review deadlines (issue 15): overdue stages escalated and 补正 requests reminded / withdrawn, daily after the batches.
CELERY_BEAT_SCHEDULE["review-escalations"] = {
    "task": "reviews.tasks.escalate_overdue",
    "schedule": crontab(hour=7, minute=30),
}
CELERY_BEAT_SCHEDULE["supplement-sweep"] = {
    "task": "reviews.tasks.sweep_supplements",
    "schedule": crontab(hour=2, minute=30),
}
# 两病 medication coverage: a rejection of these codes for "criteria not met" may enrol the person in it.
TWO_DISEASES_CODES = ("M03900", "M01600")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Defence in depth: the code never logs ID numbers (tests/security scan for it); the filter masks any that slip in.
    "filters": {"redact_personal_data": {"()": "config.redaction.RedactPersonalData"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_personal_data"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes logs every successful login at INFO; lockouts and failures stay visible at WARNING.
        "axes": {"level": "WARNING"},
        # Logger-level filters run before every handler (mail_admins, shippers, the runserver log).
        "django.request": {"filters": ["redact_personal_data"]},
        "django.security": {"filters": ["redact_personal_data"]},
        "django.server": {"filters": ["redact_personal_data"]},
    },
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Security hardening (issue 7): cookies, CSP, login throttling --------------------------------
# A clerk's session lasts a working day; closing the browser on a shared counter PC ends it.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Load balancers probe /health/ over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# /health/worker/ (issue 18 item 7): anyone gets the last worker ping's answer, at most this old (the cache is
# per process: LocMem unless CACHES says otherwise); monitoring sending "Authorization: Bearer <HEALTH_TOKEN>"
# gets a fresh ping every time. Empty HEALTH_TOKEN: nobody can force a ping.
HEALTH_WORKER_CACHE_SECONDS = env_int("HEALTH_WORKER_CACHE_SECONDS", 15)
HEALTH_TOKEN = env_str("HEALTH_TOKEN", "")

# Content-Security-Policy (django-csp 4): only this origin's scripts and styles, so templates carry no
# inline <script>, on*= handlers, <style> blocks or style= attributes; JS and CSS live in static files.
# /api/docs/ (Swagger UI) loosens it for its own view only (config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Login throttling (django-axes) for the web login and POST /api/v1/auth/token/: after
# LOGIN_FAILURE_LIMIT failures the user name is locked from that address for LOGIN_LOCKOUT_MINUTES.
# Keyed on name + address together so that one clinic's NAT address cannot lock out its colleagues
# and nobody can lock a user out from elsewhere.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# …and a user name guessed at from many addresses (issue 18 item 11): LOGIN_USERNAME_FAILURE_LIMIT failures
# across all addresses within the lockout window lock the name everywhere (config.security.LoginThrottleHandler).
# Higher than the per-address limit, so that a few typos at one counter cannot lock a colleague out; 0 turns it off.
LOGIN_USERNAME_FAILURE_LIMIT = env_int("LOGIN_USERNAME_FAILURE_LIMIT", 20)
AXES_HANDLER = "config.security.LoginThrottleHandler"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
# The client address comes from REMOTE_ADDR unless the operator names the header a trusted proxy sets
# (e.g. CLIENT_IP_HEADERS=HTTP_X_REAL_IP): a client-supplied X-Forwarded-For must not reset the count.
AXES_IPWARE_META_PRECEDENCE_ORDER = env_list("CLIENT_IP_HEADERS", ["REMOTE_ADDR"])

"""Settings of the MDM portal, all read from environment variables with safe defaults.

Without any variable set, the portal runs on the embedded default: a SQLite file and an embedded
Celery broker in the data folder (MDM_DATA_DIR, default ./var), and secrets generated there.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet

from .env import env_bool, env_int, env_list, env_str, generated_secret, new_django_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MDM_DATA_DIR", str(BASE_DIR / "var"))).resolve()

SECRET_KEY = env_str("SECRET_KEY") or generated_secret(DATA_DIR, "secret_key", new_django_secret)
DEBUG = env_bool("DJANGO_DEBUG", False)

# The base URL devices use (https in production, behind the TLS proxy).
MDM_PUBLIC_URL = env_str("MDM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(MDM_PUBLIC_URL)
_public_host = _public.hostname or "localhost"
# The host checks follow MDM_PUBLIC_URL (plus loopback, for checks on the machine itself);
# ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS still override.
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    list(
        dict.fromkeys(
            [
                f"[{_public_host}]" if ":" in _public_host else _public_host,
                "localhost",
                "127.0.0.1",
                "[::1]",
                "testserver",
            ]
        )
    ),
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [f"{_public.scheme}://{_public.netloc}"])
# Over https (the production stack), the session and CSRF cookies never travel in clear.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _public.scheme == "https"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served by the portal (no CDN)
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_celery_results",
    "django_celery_beat",
    "mdm_portal",
    "certs",
    "devices",
    "commands",
    "enrollment",
    "declarations",
    "webhooks",
]

MIDDLEWARE = [
    # First: a database outage raised anywhere below becomes a 503 with Retry-After.
    "mdm_portal.unavailable.DatabaseUnavailableMiddleware",
    "mdm_portal.proxy.RealClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mdm_portal.audit.AuditScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "mdm_portal.urls"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
WSGI_APPLICATION = "mdm_portal.wsgi.application"

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
                "mdm_portal.roles.role_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'mdm.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        # No check of a kept connection before each request: it was one more round trip
        # (SELECT 1) on every device request. A connection a PostgreSQL restart broke fails
        # its next request with a 503 that devices retry (mdm_portal/unavailable.py closes
        # it), and the request after reconnects. DB_CONN_HEALTH_CHECKS=1 checks each time.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database host that does not answer fails a request in seconds (a 503, see
    # mdm_portal/unavailable.py) rather than holding a web worker for the TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("MDM_DB_CONNECT_TIMEOUT_SECONDS", 5)
    )
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default: WAL and IMMEDIATE transactions so the web server and the worker can
    # share the file, and a write transaction takes the lock up front (no upgrade deadlocks).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a Celery worker started by a test sees the test database.
    # One per process, so two test runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-mdm-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic fills it; whitenoise serves it
# Every asset is served by the portal itself (whitenoise), never from a CDN.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Device bodies are read by the MDM views themselves, with their own limits (below).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- MDM ---------------------------------------------------------------------------------

# Fernet keys (comma separated, newest first) that encrypt private keys and tokens at rest.
# Rotation: put the new key first and keep the old ones until `mdm_init --rotate-secrets` ran.
MDM_SECRETS_KEY = env_str("MDM_SECRETS_KEY") or generated_secret(
    DATA_DIR, "secrets_key", lambda: Fernet.generate_key().decode()
)

# The request header in which the TLS proxy forwards the device's client certificate, as
# nginx's $ssl_client_escaped_cert (URL-escaped PEM) or RFC 9440 (":base64-DER:"). Empty means
# the header is not trusted at all: only a proxy that always overwrites it may set this.
MDM_CLIENT_CERT_HEADER = env_str("MDM_CLIENT_CERT_HEADER")
# The request header in which the TLS proxy passes the client's address (serve.sh's nginx:
# X-Real-Ip), for logs and the audit; unset, the address the server sees (the proxy's). Same
# rule: only for a proxy that always sets it.
MDM_REAL_IP_HEADER = env_str("MDM_REAL_IP_HEADER")

# Device identity CA and the certificates it issues.
MDM_CA_KEY_TYPE = env_str("MDM_CA_KEY_TYPE", "rsa")  # "rsa" (2048) or "ec" (P-256)
MDM_CA_VALIDITY_DAYS = env_int("MDM_CA_VALIDITY_DAYS", 3650)
MDM_CA_COMMON_NAME = env_str("MDM_CA_COMMON_NAME", "MDM Portal Device Identity CA")
MDM_DEVICE_CERT_VALIDITY_DAYS = env_int("MDM_DEVICE_CERT_VALIDITY_DAYS", 365)

# SCEP: one-time challenges live this long; an optional static challenge (for clients outside
# enrollment profiles, e.g. certmonger); manual approval makes every request PENDING until an
# admin approves it (`mdm_scep approve`).
MDM_SCEP_CHALLENGE_TTL_HOURS = env_int("MDM_SCEP_CHALLENGE_TTL_HOURS", 24)
MDM_SCEP_STATIC_CHALLENGE = env_str("MDM_SCEP_STATIC_CHALLENGE")
MDM_SCEP_MANUAL_APPROVAL = env_bool("MDM_SCEP_MANUAL_APPROVAL", False)

# ACME (/acme/directory): the roots device attestations must chain to (a PEM file; Apple's
# Enterprise Attestation Root CA by default), and how long an order has to be completed.
MDM_ACME_ATTESTATION_ROOTS = env_str(
    "MDM_ACME_ATTESTATION_ROOTS",
    str(BASE_DIR / "certs" / "data" / "apple-enterprise-attestation-root-ca.pem"),
)
MDM_ACME_ORDER_LIFETIME_MINUTES = env_int("MDM_ACME_ORDER_LIFETIME_MINUTES", 60)

# Days before expiry at which certificates are flagged (push, CA, signing, TLS, identities).
MDM_EXPIRY_WARNING_DAYS = [
    int(d) for d in env_list("MDM_EXPIRY_WARNING_DAYS", ["30", "14", "7", "1"])
]

# The server's TLS chain (PEM, its certificate first) and key, e.g. from a public CA; the TLS
# proxy serves them (scripts/serve.sh). Unset, with an https MDM_PUBLIC_URL, mdm_init makes a
# server-TLS CA and a certificate for the host (certs/server_tls.py). A private chain's CA
# certificates go into enrollment profiles. MDM_TLS_CHAIN_FILE is the former name.
MDM_TLS_CERT_FILE = env_str("MDM_TLS_CERT_FILE") or env_str("MDM_TLS_CHAIN_FILE")
MDM_TLS_KEY_FILE = env_str("MDM_TLS_KEY_FILE")
# Organization shown in profiles.
MDM_ORGANIZATION = env_str("MDM_ORGANIZATION", "MDM Portal")
# PKCS#12 identities in enrollment profiles: "compat" (3DES/SHA-1, what every iOS/macOS opens;
# the password travels in the same profile anyway) or "aes" (AES-256/PBKDF2-SHA256).
MDM_PKCS12_ENCRYPTION = env_str("MDM_PKCS12_ENCRYPTION", "compat")

# Largest device request bodies accepted; the server URL gets more room (app lists are big).
# Check-in carries declarative status reports (base64 JSON inside the plist): 1 MiB.
MDM_CHECKIN_MAX_BYTES = env_int("MDM_CHECKIN_MAX_BYTES", 1024 * 1024)
MDM_CONNECT_MAX_BYTES = env_int("MDM_CONNECT_MAX_BYTES", 16 * 1024 * 1024)
# Largest configuration profile the library takes (uploads; the TLS proxy's limit follows it).
MDM_PROFILE_MAX_BYTES = env_int("MDM_PROFILE_MAX_BYTES", 8 * 1024 * 1024)

# AccessRights assumed for a device enrolled without an enrollment record (all rights).
MDM_DEFAULT_ACCESS_RIGHTS = env_int("MDM_DEFAULT_ACCESS_RIGHTS", 8191)

# Answered queue rows older than this move to the archive, so the live queue stays small.
MDM_QUEUE_RETENTION_DAYS = env_int("MDM_QUEUE_RETENTION_DAYS", 30)
# Archived rows older than this are deleted for good (0 keeps them forever).
MDM_ARCHIVE_RETENTION_DAYS = env_int("MDM_ARCHIVE_RETENTION_DAYS", 365)

# APNs: the base URL (a stand-in in tests) and the CA bundle trusted for it.
MDM_APNS_URL = env_str("MDM_APNS_URL")
MDM_APNS_CA_FILE = env_str("MDM_APNS_CA_FILE")
MDM_APNS_CONCURRENCY = env_int("MDM_APNS_CONCURRENCY", 500)  # streams in flight at once
MDM_APNS_RETRIES = env_int("MDM_APNS_RETRIES", 3)  # for 429 and 5xx
MDM_APNS_EXPIRATION_SECONDS = env_int("MDM_APNS_EXPIRATION_SECONDS", 7 * 24 * 3600)
# Pushes follow enqueues after this many seconds, one per device however many commands.
MDM_PUSH_COALESCE_SECONDS = env_int("MDM_PUSH_COALESCE_SECONDS", 2)
# A push run holds the devices it claimed for this long; if its worker dies before APNs got
# the batch, the next run after it pushes them again. Longer than a batch takes to send.
MDM_PUSH_CLAIM_LEASE_SECONDS = env_int("MDM_PUSH_CLAIM_LEASE_SECONDS", 300)

# Automated Device Enrollment: Apple's DEP API (a stand-in in tests), how often each server's
# devices are synced (the beat entry checks every minute which servers are due), and the
# client's patience: timeout per request, retries of 429/5xx/network errors (first wait
# MDM_DEP_RETRY_SECONDS, doubling; a Retry-After longer than MDM_DEP_RETRY_MAX_SECONDS is left
# to the next run), and the pages one sync run reads at most.
MDM_DEP_URL = env_str("MDM_DEP_URL", "https://mdmenrollment.apple.com").rstrip("/")
MDM_DEP_SYNC_MINUTES = env_int("MDM_DEP_SYNC_MINUTES", 30)
MDM_DEP_TIMEOUT_SECONDS = env_int("MDM_DEP_TIMEOUT_SECONDS", 30)
MDM_DEP_RETRIES = env_int("MDM_DEP_RETRIES", 2)
MDM_DEP_RETRY_SECONDS = env_int("MDM_DEP_RETRY_SECONDS", 2)
MDM_DEP_RETRY_MAX_SECONDS = env_int("MDM_DEP_RETRY_MAX_SECONDS", 60)
MDM_DEP_SYNC_MAX_PAGES = env_int("MDM_DEP_SYNC_MAX_PAGES", 100)
# POST /dep/enroll: the certificates whose keys issue the device identities that sign
# MachineInfo (a PEM file). Apple's "Apple iPhone Device CA" by default (SHA-256
# 76:F2:7D:00:...:C4:C6:6C:CE; see certs/device_statements.py for why that one).
MDM_DEP_DEVICE_ROOTS = env_str(
    "MDM_DEP_DEVICE_ROOTS",
    str(BASE_DIR / "certs" / "data" / "apple-iphone-device-ca.pem"),
)

# Sweeps: keep-alive push to devices not seen for a day; inactive after 7 days of silence;
# unanswered commands expire after 30 days; devices held back by NotNow are pushed again
# every 4 hours at most.
MDM_KEEPALIVE_HOURS = env_int("MDM_KEEPALIVE_HOURS", 24)
MDM_INACTIVE_DAYS = env_int("MDM_INACTIVE_DAYS", 7)
MDM_COMMAND_EXPIRY_DAYS = env_int("MDM_COMMAND_EXPIRY_DAYS", 30)
MDM_NOTNOW_REPUSH_HOURS = env_int("MDM_NOTNOW_REPUSH_HOURS", 4)

# --- REST API (/api/v1/) ----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mdm_portal.api_tokens.ApiTokenAuthentication",  # first: a 401 says WWW-Authenticate
        "mdm_portal.api_tokens.ApiSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mdm_portal.api_base.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["mdm_portal.api_base.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "mdm_portal.api_base.Cursor",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mdm_portal.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MDM portal API",
    "DESCRIPTION": (
        "Everything the staff UI does, for scripts: devices, commands, profiles, enrollments, "
        "groups, certificates, SCEP approvals, pushes, the audit log, webhooks, Automated "
        "Device Enrollment and Declarative Device Management (declarations, sets, states). "
        "Authenticate with `Authorization: Token <key>`; the token acts with its user's role."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mdm_portal.api_schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CommandStatus": "commands.models.Status",
        "DeviceState": "devices.models.Device.State",
        "DeclarationKind": "declarations.models.Kind",
        "DeclarativeState": "declarations.states.STATES",
    },
}
# Largest JSON body the API reads (a command for 20,000 UDIDs is under 1 MiB): 413 above it.
# (A profile upload has the library's own limit, MDM_PROFILE_MAX_BYTES.)
MDM_API_MAX_BODY_BYTES = env_int("MDM_API_MAX_BODY_BYTES", 4 * 1024 * 1024)

# --- Webhooks ---------------------------------------------------------------------------------

# Webhook deliveries: attempts before giving up (with an alert), the first retry's delay
# (doubled each time, with jitter, up to the maximum), the request timeout, deliveries in
# flight at once, and how long the delivery log is kept.
MDM_WEBHOOK_MAX_ATTEMPTS = env_int("MDM_WEBHOOK_MAX_ATTEMPTS", 15)
MDM_WEBHOOK_RETRY_SECONDS = env_int("MDM_WEBHOOK_RETRY_SECONDS", 10)
MDM_WEBHOOK_RETRY_MAX_SECONDS = env_int("MDM_WEBHOOK_RETRY_MAX_SECONDS", 3600)
MDM_WEBHOOK_TIMEOUT_SECONDS = env_int("MDM_WEBHOOK_TIMEOUT_SECONDS", 10)
MDM_WEBHOOK_CONCURRENCY = env_int("MDM_WEBHOOK_CONCURRENCY", 8)
MDM_WEBHOOK_RETENTION_DAYS = env_int("MDM_WEBHOOK_RETENTION_DAYS", 30)

# --- Celery ----------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite3'}"
CELERY_RESULT_BACKEND = "django-db"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker killed mid-task leaves its message unacknowledged (ACKS_LATE), but it is not
# re-queued at once (TASK_REJECT_ON_WORKER_LOST stays off): a task that kills its worker would
# loop. What must survive a kill is in the database instead (a push claim is a lease that the
# next run takes over, commands/tasks.py).
CELERY_TASK_REJECT_ON_WORKER_LOST = False
# Web requests ask the broker for "run soon" only after their work is in the database, and must
# not wait for it (mdm_portal/broker.py): a broker that does not answer within this many seconds
# is taken as down, and this process then leaves it alone for the pause.
MDM_BROKER_TIMEOUT_SECONDS = env_int("MDM_BROKER_TIMEOUT_SECONDS", 1)
MDM_BROKER_PAUSE_SECONDS = env_int("MDM_BROKER_PAUSE_SECONDS", 15)
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One connection attempt when publishing (kombu's default retries for 4 s); workers
        # keep their own reconnect loop (broker_connection_max_retries).
        "max_retries": 0,
        "socket_connect_timeout": MDM_BROKER_TIMEOUT_SECONDS,
        # Above the worker's 1 s BRPOP wait, which a shorter read timeout would break.
        "socket_timeout": max(MDM_BROKER_TIMEOUT_SECONDS, 5),
    }
# The schedule lives in the database (django-celery-beat): admins change it without code.
# Its default entries are installed by a migration (mdm_portal/schedule.py), not listed in
# CELERY_BEAT_SCHEDULE, which beat would write over the admins' changes at every start.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # The same short timeouts as the broker's: the cache is on the same Redis.
            "OPTIONS": {
                "socket_connect_timeout": MDM_BROKER_TIMEOUT_SECONDS,
                "socket_timeout": MDM_BROKER_TIMEOUT_SECONDS,
            },
        }
    }

"""Settings: secrets and hosts come from config/settings.env, linked from shared/."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
env = {}
settings_env = BASE_DIR / "config" / "settings.env"
if settings_env.exists():
    for line in settings_env.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()

SECRET_KEY = env.get("SECRET_KEY", "insecure-dev-key")
DEBUG = env.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = env.get("ALLOWED_HOSTS", "localhost").split(",")
# sessions: the cron host's `clearsessions` (deploy/crontab); mysite: its static files and
# the worker's command.
INSTALLED_APPS = ["django.contrib.sessions", "django.contrib.staticfiles", "mysite"]
# Static files are served by gunicorn through WhiteNoise, from STATIC_ROOT (collectstatic's
# output, in each release), with far-future caching of the hashed names.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env.get("DATABASE_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

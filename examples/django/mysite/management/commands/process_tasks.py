"""The worker deploy/supervisor-worker.conf runs: a stand-in for your task queue's worker
(celery, django-q, ...). It says which release it runs, then waits for work it never gets;
supervisord stops it (SIGTERM) at each `restart-worker`."""
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the worker (a stand-in: it logs its release and idles)"

    def handle(self, *args, **options):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # BASE_DIR is resolved: releases/<id>, the release `current` pointed to at start.
        self.stdout.write(f"worker started in release {settings.BASE_DIR.name}")
        self.stdout.flush()
        while True:
            time.sleep(60)

"""`manage.py ensuredemo`: on first start, a demo tenant with its owner's login and an API key."""

import os
import secrets

from django.core.management.base import BaseCommand

from softserve.tenancy.actions import create_tenant
from softserve.tenancy.models import Tenant

DEMO_TENANT = os.environ.get("SOFTSERVE_DEMO_TENANT", "demo")
DEMO_OWNER = os.environ.get("SOFTSERVE_DEMO_OWNER", "demo@softserve.local")


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options) -> None:
        if Tenant.objects.filter(name=DEMO_TENANT).exists():
            self.stdout.write(
                f"demo tenant {DEMO_TENANT!r}: sign in as {DEMO_OWNER} with the password printed at "
                "first start (or `manage.py changepassword`); create keys at /api/v1/keys"
            )
            return
        password = secrets.token_urlsafe(12)
        tenant, _, key = create_tenant(DEMO_TENANT, DEMO_OWNER, password)
        self.stdout.write(self.style.SUCCESS(f"created demo tenant {tenant.name!r}"))
        port = os.environ.get("PORT", "8000")
        self.stdout.write(
            f"web login: {DEMO_OWNER} / {password}  (at http://127.0.0.1:{port}/accounts/login/)"
        )
        self.stdout.write(f"API key (shown once): {key}")

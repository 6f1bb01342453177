"""`manage.py ensuredemo`: on first start, a demo tenant with its owner's login and an API key, and an
operator (Django staff) login for /ops/."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from common import settings as decl
from softserve.tenancy.actions import create_tenant
from softserve.tenancy.models import Tenant

DEMO_TENANT = decl.DEMO_TENANT.read()
DEMO_OWNER = decl.DEMO_OWNER.read()
DEMO_OPERATOR = decl.DEMO_OPERATOR.read()


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options) -> None:
        self._tenant()
        self._operator()

    def _operator(self) -> None:
        """A staff user (no team) who can open /ops/; its password is printed once, at creation."""
        port = decl.PORT.read()
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_OPERATOR, defaults={"email": DEMO_OPERATOR, "is_staff": True}
        )
        if not created:
            self.stdout.write(
                f"operator login: {DEMO_OPERATOR} with the password printed at first start "
                f"(or `manage.py changepassword {DEMO_OPERATOR}`); http://127.0.0.1:{port}/ops/"
            )
            return
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        self.stdout.write(
            f"operator login: {DEMO_OPERATOR} / {password}  (then http://127.0.0.1:{port}/ops/)"
        )

    def _tenant(self) -> None:
        if Tenant.objects.filter(name=DEMO_TENANT).exists():
            self.stdout.write(
                f"demo tenant {DEMO_TENANT!r}: sign in as {DEMO_OWNER} with the password printed at "
                "first start (or `manage.py changepassword`); create keys at /api/v1/keys"
            )
            return
        password = secrets.token_urlsafe(12)
        tenant, owner, key = create_tenant(DEMO_TENANT, DEMO_OWNER, password)
        self.stdout.write(self.style.SUCCESS(f"created demo tenant {tenant.name!r}"))
        port = decl.PORT.read()
        shown = password if owner.created_now else "their existing password"
        self.stdout.write(f"web login: {DEMO_OWNER} / {shown}  (at http://127.0.0.1:{port}/accounts/login/)")
        self.stdout.write(f"API key (shown once): {key}")

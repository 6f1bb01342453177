"""`manage.py createtenant NAME --owner EMAIL`: a tenant, its owner, and one API key with every scope."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as PasswordRefused
from django.core.management.base import BaseCommand, CommandError

from softserve.errors import Invalid
from softserve.tenancy.actions import create_tenant


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="the owner's e-mail")
        parser.add_argument("--password", default=None, help="the owner's web password (default: generated)")

    def handle(self, *args, name: str, owner: str, password: str | None, **options) -> None:
        if "@" not in owner:
            raise CommandError(f"--owner must be an e-mail address, got {owner!r}.")
        existing = get_user_model().objects.filter(username=owner).exists()
        if existing and password is not None:
            raise CommandError(
                f"{owner} has an account already and keeps its password; leave out --password "
                f"(its owner changes it with `manage.py changepassword {owner}`)."
            )
        if password is not None:
            try:
                validate_password(password)  # AUTH_PASSWORD_VALIDATORS
            except PasswordRefused as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        password = password or secrets.token_urlsafe(16)
        try:
            tenant, user, key = create_tenant(name.strip(), owner, password)
        except Invalid as exc:
            raise CommandError(" ".join(str(m) for msgs in exc.fields.values() for m in msgs)) from exc
        self.stdout.write(f"tenant {tenant.name} ({tenant.id})")
        if user.created_now:
            self.stdout.write(f"web login: {owner} / {password}  (at /accounts/login/)")
        else:  # an existing account: its password is its owner's, never reset or printed here
            self.stdout.write(f"web login: {owner} with their existing password  (at /accounts/login/)")
        self.stdout.write(f"API key (shown once): {key}")

"""Security round 2 (issue 22) in tenancy: `createtenant` and existing accounts."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from softserve.tenancy.models import Membership
from tests.teams import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "an-owner's-own-Passphrase-7"


def test_createtenant_keeps_an_existing_owners_password_and_never_prints_one(capsys):
    owner = make_user("boss@initech.example", PASSWORD)
    before = get_user_model().objects.get(pk=owner.pk).password
    call_command("createtenant", "initech", "--owner", "boss@initech.example")
    out = capsys.readouterr().out
    assert get_user_model().objects.get(pk=owner.pk).password == before  # not reset
    login = out.splitlines()[1]
    assert login.startswith("web login: boss@initech.example") and " / " not in login, login
    assert "existing password" in login
    client = Client()
    signed_in = client.post("/accounts/login/", {"username": "boss@initech.example", "password": PASSWORD})
    assert signed_in.status_code == 302  # the owner's own password still works
    assert Membership.objects.get(user=owner).role == "owner"
    with pytest.raises(CommandError, match="keeps its password"):
        call_command("createtenant", "other", "--owner", "boss@initech.example", "--password", "x" * 20)
    assert get_user_model().objects.get(pk=owner.pk).password == before


def test_createtenant_gives_a_new_account_a_password_it_prints(capsys):
    call_command("createtenant", "hooli", "--owner", "gavin@hooli.example")
    password = capsys.readouterr().out.splitlines()[1].split(" / ")[1].split()[0]
    client = Client()
    assert (
        client.post("/accounts/login/", {"username": "gavin@hooli.example", "password": password}).status_code
        == 302
    )


def test_make_secrets_fills_every_empty_secret_once_and_keeps_set_ones(tmp_path):
    """Issue 22, finding 10: .env.example ships no usable key; `make secrets` (deploy/make_secrets.py)
    writes one, and compose's passwords, into .env."""
    import importlib.util
    import re

    from tests.conftest import ROOT

    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^DJANGO_SECRET_KEY=$", example, re.M), ".env.example must ship no usable key"
    spec = importlib.util.spec_from_file_location("deploy_secrets", ROOT / "deploy" / "make_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env = tmp_path / ".env"
    filled = module.fill(env, ROOT / ".env.example")
    assert set(filled) == set(module.SECRETS)
    text = env.read_text()
    key = re.search(r"^DJANGO_SECRET_KEY=(.+)$", text, re.M).group(1)
    assert len(key) >= 50 and key != "softserve-embedded-default-not-for-production"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    env.write_text(text.replace(re.search(r"^REDIS_PASSWORD=.*$", text, re.M).group(0), "REDIS_PASSWORD="))
    assert module.fill(env, ROOT / ".env.example") == ["REDIS_PASSWORD"]
    assert re.search(r"^DJANGO_SECRET_KEY=(.+)$", env.read_text(), re.M).group(1) == key  # kept
    assert len(env.read_text().splitlines()) == len(example.splitlines())  # filled in place

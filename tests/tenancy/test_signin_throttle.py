"""Issue 22, findings 1 and 2: the sign-in throttle counts the account as authentication reads it, takes
the client's address through trusted proxies only, and never lets a stranger keep an owner out."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from softserve.clientaddr import client_address_of, parse_networks
from softserve.tenancy.accounts import DEVICE_COOKIE, account_of

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-Passphrase-9"
PROXY = "10.0.0.1"  # the ingress controller, as the web sees it


@pytest.fixture
def owner(settings):
    cache.clear()
    # Cheap password hashing: each attempt checks a password, and the throttle does not depend on how.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_ACCOUNT_FREE_FAILURES = 3
    settings.LOGIN_ACCOUNT_DELAY_S = 0.2
    settings.LOGIN_ACCOUNT_MAX_DELAY_S = 0.4
    settings.LOGIN_ADDRESS_MAX_FAILURES = 6
    settings.TRUSTED_PROXIES = parse_networks("10.0.0.0/24")
    call_command("createtenant", "lock", "--owner", "victim@lock.example", "--password", PASSWORD)
    yield "victim@lock.example"
    cache.clear()


def attempt(browser: Client, username: str, password: str, client: str = "203.0.113.7", **meta):
    """A sign-in through the ingress: the proxy appends the address it received the request from."""
    return browser.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=meta.pop("forwarded", client),
        **meta,
    )


def test_the_account_is_counted_as_authentication_reads_it(owner):
    """Finding 1: full-width letters sign in as the ASCII account (Django NFKC-normalises the username),
    so they must share its count; the old counter gave each spelling five fresh guesses."""
    assert account_of("ｖｉｃｔｉｍ@lock.example") == account_of(" Victim@LOCK.example ") == owner
    signed_in = attempt(Client(), "ｖｉｃｔｉｍ@lock.example", PASSWORD)
    assert signed_in.status_code == 302  # the look-alike is the same account to authentication
    cache.clear()
    browser = Client()
    spellings = ["victim@lock.example", "ｖictim@lock.example", "Victim@lock.example"]
    assert [attempt(browser, name, "wrong").status_code for name in spellings] == [200, 200, 200]
    # Free failures used up, on three spellings: a fourth spelling waits like the first would.
    delayed = attempt(browser, "vｉctim@lock.example", "wrong")
    assert delayed.status_code == 429, "a look-alike spelling got a fresh guess"
    assert 1 <= int(delayed["Retry-After"]) <= 1
    assert "Too many failed sign-ins" in delayed.content.decode()


def test_a_stranger_behind_the_same_proxy_cannot_keep_the_owner_out(owner, settings):
    """Finding 2: every client reaches the web through the proxy (one REMOTE_ADDR). A stranger's failures
    on the owner's e-mail cost the stranger's address, not the owner's; the account is delayed for at most
    LOGIN_ACCOUNT_MAX_DELAY_S, and the owner's own browser is not delayed at all."""
    owners_browser = Client()
    assert attempt(owners_browser, owner, PASSWORD, client="198.51.100.20").status_code == 302
    assert owners_browser.cookies[DEVICE_COOKIE].value  # this browser is remembered for the account
    owners_browser.post("/accounts/logout/")  # the browser keeps its cookies (Client.logout drops them)

    # The stranger guesses as fast as the account's delay lets any guess be checked.
    settings.LOGIN_ACCOUNT_MAX_DELAY_S = 1.0
    stranger, statuses = Client(), []
    for i in range(settings.LOGIN_ADDRESS_MAX_FAILURES):
        if i >= settings.LOGIN_ACCOUNT_FREE_FAILURES:
            time.sleep(settings.LOGIN_ACCOUNT_MAX_DELAY_S + 0.05)
        statuses.append(attempt(stranger, owner, "guess", client="203.0.113.66").status_code)
    assert statuses == [200] * settings.LOGIN_ADDRESS_MAX_FAILURES, statuses
    # The stranger's address is refused now, whatever account it tries.
    refused = attempt(stranger, "someone@else.example", "x", client="203.0.113.66")
    assert refused.status_code == 429 and int(refused["Retry-After"]) == settings.LOGIN_WINDOW_S
    assert "from your address" in refused.content.decode()

    # The account is in its delay now (a second since the last failure): a browser that never signed in
    # to it waits, the owner's own browser does not, through the same proxy.
    fresh = Client()
    delayed = attempt(fresh, owner, PASSWORD, client="198.51.100.21")
    assert delayed.status_code == 429 and 1 <= int(delayed["Retry-After"]) <= 1, delayed.status_code
    assert attempt(owners_browser, owner, PASSWORD, client="198.51.100.20").status_code == 302
    # The owner on the new browser waits the account's delay at most, then signs in.
    time.sleep(settings.LOGIN_ACCOUNT_MAX_DELAY_S + 0.05)
    assert attempt(fresh, owner, PASSWORD, client="198.51.100.21").status_code == 302


def test_the_delay_grows_per_failure_up_to_its_ceiling(owner, settings):
    settings.LOGIN_ACCOUNT_DELAY_S, settings.LOGIN_ACCOUNT_MAX_DELAY_S = 0.3, 0.6
    browser, waits = Client(), []
    for i in range(6):
        response = attempt(browser, owner, "wrong", client=f"203.0.113.{i + 1}")  # a fresh address each time
        deadline = time.monotonic() + 2 * settings.LOGIN_ACCOUNT_MAX_DELAY_S + 1
        while response.status_code == 429 and time.monotonic() < deadline:
            waits.append(float(response["Retry-After"]))
            time.sleep(0.1)
            response = attempt(browser, owner, "wrong", client=f"203.0.113.{i + 1}")
        assert response.status_code == 200
    assert waits and max(waits) <= 1  # Retry-After is whole seconds, rounded up from 0.6
    assert attempt(browser, owner, PASSWORD, client="203.0.113.99").status_code == 429  # not checked yet
    time.sleep(settings.LOGIN_ACCOUNT_MAX_DELAY_S + 0.1)
    assert attempt(browser, owner, PASSWORD, client="203.0.113.99").status_code == 302


def test_the_client_address_is_read_through_trusted_hops_only(settings):
    trusted = parse_networks("10.0.0.0/8, 192.168.1.5")
    # No trusted proxies: the peer is the client, whatever the header says.
    assert client_address_of("203.0.113.7", "1.2.3.4", ()) == "203.0.113.7"
    # An untrusted peer cannot name another client.
    assert client_address_of("203.0.113.7", "1.2.3.4", trusted) == "203.0.113.7"
    # Right to left through trusted hops: the client's own additions on the left are never read.
    assert client_address_of("10.0.0.1", "1.2.3.4, 198.51.100.9, 192.168.1.5", trusted) == "198.51.100.9"
    assert client_address_of("10.0.0.1", "198.51.100.9", trusted) == "198.51.100.9"
    # Nothing but proxies: the leftmost is the nearest to the client we know of; no header: the proxy.
    assert client_address_of("10.0.0.1", "10.0.0.2", trusted) == "10.0.0.2"
    assert client_address_of("10.0.0.1", "", trusted) == "10.0.0.1"
    # A trusted hop that wrote garbage: believe nothing further left.
    assert client_address_of("10.0.0.1", "1.2.3.4, junk", trusted) == "10.0.0.1"
    assert client_address_of("::ffff:10.0.0.1", "[2001:db8::1]:443", trusted) == "2001:db8::1"
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks("10.0.0.0/8,not-a-network")


@pytest.mark.django_db(transaction=True)
def test_guesses_sent_side_by_side_get_no_more_than_the_free_ones(owner, settings, monkeypatch):
    """Every attempt is counted before its password is checked: ten sent at once (each check made slow, so
    they overlap) get the account's free failures checked and the rest refused, not ten guesses."""
    import threading

    from django.contrib.auth import forms as auth_forms

    checked: list[str] = []
    original = auth_forms.authenticate

    def slow_check(*args, **kwargs):
        checked.append(kwargs.get("username", ""))
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(auth_forms, "authenticate", slow_check)
    start = threading.Barrier(10)
    statuses: list[int] = []

    def guess(i: int) -> None:
        start.wait()
        statuses.append(attempt(Client(), owner, f"wrong-{i}", client=f"203.0.113.{i + 1}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == settings.LOGIN_ACCOUNT_FREE_FAILURES, (checked, statuses)
    assert sorted(statuses) == [200] * len(checked) + [429] * (10 - len(checked))

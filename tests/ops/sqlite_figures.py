"""Run by tests/ops/test_summary_figures.py in a process of its own on a fresh SQLite database (what
`make run` uses): the hand-written window query and the Python percentiles against the plain count.
Prints one JSON object."""

from __future__ import annotations

import json
import os
import sys


def main(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from softserve.jobs.models import Job
    from softserve.ops import summary
    from tests.ops import test_summary_figures as figures
    from tests.teams import Team

    call_command("migrate", verbosity=0)
    Job._meta.get_field("queued_at").auto_now_add = False
    acme, globex = Team("acme"), Team("globex")
    now = timezone.now()
    figures._rows(now, [acme, globex])
    jobs = list(Job.objects.all())
    names = {acme.tenant.pk: "acme", globex.tenant.pk: "globex"}
    teams = {r["team"]: (r["gpu_hours_today"], r["gpu_hours_7d"]) for r in summary.teams(now)}
    result = {
        "vendor": connection.vendor,
        "queues": summary.queues(now) == figures._expected_queues(now, jobs),
        "teams": teams == figures._expected_hours(now, jobs, names),
        "summary_keys": sorted(summary.summary()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])

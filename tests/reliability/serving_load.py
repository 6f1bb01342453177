"""A bounded, headless Locust run against a running platform: `python -m tests.reliability.serving_load
SPEC_JSON`. Run as its own process (Locust monkey-patches the standard library with gevent, which must
never happen inside the test process). The spec names the host, the run time and, per team, its API key,
prompts, user count and pause between requests; the last line printed is one JSON object with each team's
requests, status counts, requests/s and latency percentiles (ms, measured per request).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(spec: dict[str, Any]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    users = []
    for team, conf in spec["teams"].items():

        class TeamUser(FastHttpUser):
            host = spec["host"]
            wait_time = constant(conf["pause_s"])
            _team, _conf = team, conf
            _i = 0

            @task
            def predict(self) -> None:
                conf = self._conf
                name = conf["prompts"][self._i % len(conf["prompts"])]
                self._i += 1
                started = time.perf_counter()
                with self.client.post(
                    f"/api/v1/prompts/{name}:predict",
                    json={"inputs": [f"load request {self._i}: a rather good film"]},
                    headers={"Authorization": f"Bearer {conf['key']}"},
                    name=self._team,
                    catch_response=True,
                ) as response:
                    statuses[self._team][str(response.status_code)] += 1
                    if response.status_code == 200:
                        latencies[self._team].append(1000 * (time.perf_counter() - started))
                        response.success()
                    elif response.status_code == 429 and conf.get("may_be_refused"):
                        response.success()  # the fair-share answer this team is expected to get
                        # It was told when to come back (Retry-After); a client may wait less.
                        gevent.sleep(conf.get("backoff_s", 0))
                    else:
                        response.failure(f"{response.status_code}: {response.text[:200]}")

        TeamUser.__name__ = f"{team.capitalize()}User"
        TeamUser.fixed_count = conf["users"]
        users.append(TeamUser)
    env = Environment(user_classes=users)
    runner = env.create_local_runner()
    total = sum(conf["users"] for conf in spec["teams"].values())
    started = time.monotonic()
    runner.start(total, spawn_rate=total)
    gevent.sleep(spec["seconds"])
    runner.quit()
    elapsed = time.monotonic() - started
    out: dict[str, Any] = {"seconds": round(elapsed, 1)}
    for team in spec["teams"]:
        ok = latencies[team]
        out[team] = {
            "requests": sum(statuses[team].values()),
            "statuses": dict(statuses[team]),
            "ok_per_s": round(len(ok) / elapsed, 2),
            "p50_ms": round(_percentile(ok, 0.5), 1),
            "p99_ms": round(_percentile(ok, 0.99), 1),
            "errors": env.stats.entries[(team, "POST")].num_failures
            if (team, "POST") in env.stats.entries
            else 0,
        }
    return out


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)

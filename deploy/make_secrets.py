"""`make secrets`: a .env with a random value for every secret it leaves empty. (Not named secrets.py:
scripts in deploy/ run with that folder first on the path, where it would hide the stdlib's `secrets`.)

Creates .env from .env.example when there is none, then fills each empty secret (DJANGO_SECRET_KEY,
the compose passwords and METRICS_TOKEN) with a fresh random value; a secret that already has a value
keeps it, so running it again changes nothing. The values are URL-safe hex: the passwords go into
DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import argparse
import re
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name -> how its value is made (FLOWER_BASIC_AUTH is user:password).
SECRETS = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_hex(32),
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(24),
    "REDIS_PASSWORD": lambda: secrets.token_hex(24),
    "MINIO_ROOT_PASSWORD": lambda: secrets.token_hex(24),
    "FLOWER_BASIC_AUTH": lambda: f"ops:{secrets.token_hex(16)}",
    "GRAFANA_ADMIN_PASSWORD": lambda: secrets.token_hex(16),
    "METRICS_TOKEN": lambda: secrets.token_hex(32),
}


def fill(env_file: Path, example: Path) -> list[str]:
    """Write the missing secrets into env_file (made from example when absent); the names filled."""
    text = env_file.read_text() if env_file.exists() else example.read_text()
    filled = []
    for name, make in SECRETS.items():
        line = re.compile(rf"^{name}=(.*)$", re.M)
        found = line.search(text)
        if found and found.group(1).strip():
            continue
        value = make()
        text = line.sub(f"{name}={value}", text, count=1) if found else f"{text.rstrip()}\n{name}={value}\n"
        filled.append(name)
    env_file.write_text(text)
    env_file.chmod(0o600)  # secrets: readable by their owner only
    return filled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    args = parser.parse_args()
    filled = fill(args.env_file, ROOT / ".env.example")
    print(f"{args.env_file}: " + (f"wrote {', '.join(filled)}" if filled else "every secret was set already"))


if __name__ == "__main__":
    main()

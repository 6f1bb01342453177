#!/usr/bin/env python
"""Django's command-line utility for Softserve's platform."""

import os
import sys
from pathlib import Path

# `platform/` holds the Django package; the repository root holds `migrations/` and `common/contracts.py`.
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "softserve.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""`python -m workers.engine.cli`: the same command as the `softserve-engine` script."""

import sys

from workers.engine.cli import main

sys.exit(main())

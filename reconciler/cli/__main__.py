"""`python -m reconciler.cli` is the `reconciler` command too."""

from __future__ import annotations

import sys

from reconciler.cli import main

sys.exit(main())

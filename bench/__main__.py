"""`uv run python -m bench`: every benchmark of issue 12 against its baseline, in one run."""

from bench.cli import main

raise SystemExit(main())

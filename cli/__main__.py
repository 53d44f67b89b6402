"""`python -m cli ...` is `cohorts ...` (the supervisor starts its children this way)."""

from cli.main import main

main()

"""``python -m pipeline`` runs the cdcflow command line."""

from pipeline.cli import main

# As the console script does: a command that ends with an exit code (click
# returns it when not in standalone mode) must not exit 0.
raise SystemExit(main())

"""``python -m pipeline`` runs the cdcflow command line."""

from pipeline.cli import main

main()

"""The read-model database: where it is, and connections to it."""

from __future__ import annotations

from typing import Any

import psycopg

from pipeline.replay.errors import ProjectionError
from pipeline.settings import Settings

__all__ = ["connect", "read_model_dsn"]


def read_model_dsn(settings: Settings) -> str:
    """The read-model database: ``projections.dsn``, else the source database.

    Raises:
        ConfigError: the source database's password cannot be read.
    """
    return settings.projections.dsn or settings.source.dsn()


def connect(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit, ``with conn.transaction()``).

    Raises:
        ProjectionError: the database does not answer or refuses the login.
    """
    try:
        return psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ProjectionError(
            f"cannot connect to the read-model database: {str(exc).strip()}",
            hint="check CDCFLOW_PROJECTIONS__DSN (default: the source database, CDCFLOW_SOURCE__*)",
        ) from exc

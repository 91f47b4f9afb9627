"""``cdcflow init``'s command line without a database: help, refusals before connecting."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.cli import cli, main


def test_help_names_what_is_written_and_the_next_steps() -> None:
    result = CliRunner().invoke(cli, ["init", "--help"])
    assert result.exit_code == 0
    for text in (
        "--dsn",
        "--tables",
        "--schema",
        "--dry-run",
        "--force",
        "--deploy",
        "cdcflow run",
    ):
        assert text in result.output


def test_a_literal_connector_password_is_refused_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["init", "--dsn", "host=nowhere.invalid", "--connector-password", "hunter2"])
    assert exited.value.code == 78
    err = capsys.readouterr().err
    assert "placeholder" in err and "hunter2" not in err


def test_an_unreachable_database_is_exit_1_with_what_to_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1 on the loopback: refused at once, no service needed.
    with pytest.raises(SystemExit) as exited:
        main(["init", "--dsn", "host=127.0.0.1 port=1 dbname=x user=x password=x"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "cannot connect to the source database" in err and "--dsn" in err

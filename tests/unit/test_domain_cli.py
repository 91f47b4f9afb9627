"""`cdcflow domain describe`, and plan / apply / run checking connector routing against a domain."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.run import check_connectors_at_start
from pipeline.connect import ConnectClient, parse_connector_file
from pipeline.errors import ConfigError, ConnectUnreachable
from pipeline.settings import load_settings
from tests.unit.connect_fakes import FAKE_CLASS, FakeConnect

# The domain checks do not depend on the connector class: the fake worker's is used.
BANK_FILE = """\
name: bank-postgres
domain: tests.unit.domain_bank
{routing}config:
  connector.class: {cls}
  database.hostname: localhost
  database.dbname: bank
  database.user: debezium
  topic.prefix: bank
  topic.creation.default.partitions: 4
  table.include.list:
    - public.accounts
    - public.account_limits
    - public.loans
"""


def connector_dir(tmp_path: Path, routing: str = "") -> Path:
    directory = tmp_path / "connectors"
    directory.mkdir(exist_ok=True)
    (directory / "bank-postgres.yaml").write_text(BANK_FILE.format(routing=routing, cls=FAKE_CLASS))
    return directory


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConnect:
    fake = FakeConnect()
    monkeypatch.setattr("pipeline.cli.connectors._common.client", lambda ctx: fake.client())
    return fake


def test_domain_describe_json() -> None:
    result = CliRunner().invoke(
        cli, ["-o", "json", "domain", "describe", "--domain", "pipeline.domains.shop"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    order = next(a for a in data["aggregates"] if a["aggregate"] == "order")
    assert {t["table"]: t["aggregate_id_from"] for t in order["tables"]} == {
        "public.orders": "id",
        "public.order_lines": "order_id",
        "public.payments": "order_id",
    }
    assert data["findings"] == []


def test_domain_describe_text_shows_unknowns() -> None:
    result = CliRunner().invoke(cli, ["domain", "describe", "--domain", "tests.unit.domain_bank"])
    assert result.exit_code == 0, result.output
    assert "account    bank.account.events  public.account_limits  account_id" in result.output
    assert "loan_unannotated" in result.output and "? (unknown)" in result.output


def test_connector_file_domain_and_routing_keys(tmp_path: Path) -> None:
    spec = parse_connector_file(connector_dir(tmp_path, "routing: derive\n") / "bank-postgres.yaml")
    assert (spec.domain, spec.routing) == ("tests.unit.domain_bank", "derive")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BANK_FILE.format(routing="routing: sometimes\n", cls=FAKE_CLASS))
    with pytest.raises(ConfigError, match="routing 'sometimes' is not one of check, derive"):
        parse_connector_file(bad)


def test_plan_reports_the_split_aggregate_with_its_fix(tmp_path: Path, fake: FakeConnect) -> None:
    directory = connector_dir(tmp_path)
    result = CliRunner().invoke(cli, ["-o", "json", "connectors", "plan", "--dir", str(directory)])
    assert result.exit_code == 2, result.output
    (domain,) = json.loads(result.stdout)["domains"]
    assert domain["domain"] == "tests.unit.domain_bank"
    assert [(f["kind"], f["subject"]) for f in domain["findings"]] == [
        ("split-aggregate", "account")
    ]
    assert domain["fix"]["transforms.account_aggregate.topic.replacement"] == (
        "bank.public.account_aggregate"
    )
    assert domain["derived"] is None


def test_apply_refuses_a_split_aggregate(tmp_path: Path, fake: FakeConnect) -> None:
    directory = connector_dir(tmp_path)
    args = ["connectors", "apply", "--skip-preflight", "--dir", str(directory)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "account" in str(result.exception) and "split" not in fake.configs
    assert "transforms.account_aggregate.type" in str(result.exception)
    assert fake.puts() == [] and fake.configs == {}

    allowed = CliRunner().invoke(cli, [*args, "--allow-split-aggregates"])
    assert allowed.exit_code == 0, allowed.output
    assert "transforms" not in fake.configs["bank-postgres"]


def test_plan_and_apply_derive_the_routing_when_asked(tmp_path: Path, fake: FakeConnect) -> None:
    directory = connector_dir(tmp_path, "routing: derive\n")
    plan = CliRunner().invoke(cli, ["connectors", "plan", "--dir", str(directory)])
    assert plan.exit_code == 2, plan.output
    line = next(x for x in plan.output.splitlines() if "account_aggregate.topic.replacement" in x)
    assert line.endswith("(derived)")
    assert "routing derived for account" in plan.output

    args = ["-o", "json", "connectors", "apply", "--skip-preflight", "--dir", str(directory)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    deployed = fake.configs["bank-postgres"]
    assert deployed["transforms.account_aggregate.topic.replacement"] == (
        "bank.public.account_aggregate"
    )
    assert deployed["transforms.account_partition_by_account_id.partition.topic.num"] == "4"
    fields = json.loads(result.stdout)["plan"]["connectors"][0]["fields"]
    derived = [f for f in fields if "derived" in f]
    assert {f["key"] for f in derived} >= {"transforms", "predicates"}
    assert all("account split-aggregate" in f["derived"] for f in derived)


def test_run_refuses_to_start_on_a_deployed_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeConnect()
    fake.configs["bank"] = dict(
        parse_connector_file(connector_dir(tmp_path) / "bank-postgres.yaml").config
    )
    monkeypatch.setattr(ConnectClient, "from_settings", lambda conf: fake.client())
    settings = load_settings(transformer={"topics": r"^bank\..*"})
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigError) as raised:
        check_connectors_at_start(settings, "tests.unit.domain_bank")
    assert raised.value.exit_code == 78
    assert "transforms.account_aggregate.topic.replacement: bank.public.account_aggregate" in (
        caplog.text
    )
    allowed = load_settings(transformer={"topics": r"^bank\..*", "allow_split_aggregates": True})
    check_connectors_at_start(allowed, "tests.unit.domain_bank")
    # A connector whose topics the transformer does not read is not its concern.
    other = load_settings(transformer={"topics": r"^elsewhere\..*"})
    check_connectors_at_start(other, "tests.unit.domain_bank")


def test_run_goes_on_when_connect_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(conf: object) -> ConnectClient:
        raise ConnectUnreachable("GET http://connect.test:8083/connectors: connection refused")

    monkeypatch.setattr(ConnectClient, "from_settings", unreachable)
    with caplog.at_level(logging.WARNING):
        check_connectors_at_start(load_settings(), "tests.unit.domain_bank")
    assert "cannot check the connectors' routing" in caplog.text

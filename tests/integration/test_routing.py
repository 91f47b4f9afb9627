"""Order per aggregate on the real stack: a two-table aggregate, a connector as a user writes it.

``tests.domains.accounts`` has one aggregate fed by two tables (``accounts``,
``account_limits``); its connector file has Debezium's defaults (no transforms),
which would write the two tables to two topics. ``cdcflow connectors apply``
refuses that file, deploys it once it says ``routing: derive``, and then an
account's events arrive in the order its rows were committed, although the
writes to both tables are interleaved across many accounts.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.run import check_connectors_at_start
from pipeline.connect import parse_connector_file
from pipeline.connect.apply import deployed_configs
from pipeline.connect.domain import check_deployed, load_description
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.stack.scratch import repointed
from tests.domains.accounts.events import _AccountsEvent
from tests.integration.harness import REPO, PipelineRun, pipeline_run

DOMAIN = "tests.domains.accounts"
ACCOUNTS = REPO / "tests" / "domains" / "accounts"
ACCOUNT_COUNT = 25


def accounts_run(
    stack: LocalStack,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    label: str,
) -> contextlib.AbstractContextManager[PipelineRun]:
    """A run of the accounts domain: its own database, names and clean-up."""
    return pipeline_run(
        stack,
        settings,
        tmp_path,
        monkeypatch,
        domain=DOMAIN,
        event_base=_AccountsEvent,
        schema_sql=ACCOUNTS / "schema.sql",
        label=label,
    )


def write_connector_file(run: PipelineRun, directory: Path, routing: str | None) -> Path:
    """The domain's connector file as a user keeps it, pointed at the run's database and names."""
    directory.mkdir(exist_ok=True)
    spec = parse_connector_file(ACCOUNTS / "connector.yaml")
    assert (spec.domain, spec.routing) == (DOMAIN, "check")
    config = repointed(dict(spec.config), database=run.database, prefix=run.prefix, slot=run.slot)
    body: dict[str, Any] = {"name": run.connector, "domain": spec.domain, "config": config}
    if routing:
        body["routing"] = routing
    path = directory / "accounts.json"
    path.write_text(json.dumps(body, indent=2))
    return directory


def interleaved_writes(run: PipelineRun) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    """Per account: open, set a limit, change owner, change the limit, twice more; accounts
    interleaved at random, one transaction per write. Returns what each account's events
    must say, in commit order."""
    rng = random.Random(12)
    steps = {
        account: ["open", "limit", "owner", "amount", "owner", "amount", "limit"]
        for account in range(1, ACCOUNT_COUNT + 1)
    }
    expected: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    limits: dict[int, int] = {}
    with run.db() as db:
        while steps:
            account = rng.choice(sorted(steps))
            step = steps[account].pop(0)
            if not steps[account]:
                del steps[account]
            if step == "open":
                owner = f"owner-{account}-0"
                db.execute("INSERT INTO accounts (id, owner) VALUES (%s, %s)", (account, owner))
                expected[account].append(("AccountOpened", {"owner": owner}))
            elif step == "owner":
                owner = f"owner-{account}-{len(expected[account])}"
                db.execute("UPDATE accounts SET owner = %s WHERE id = %s", (owner, account))
                expected[account].append(("OwnerChanged", {"owner": owner}))
            elif step == "limit":
                amount = rng.randrange(100, 1000)
                row = db.execute(
                    "INSERT INTO account_limits (account_id, amount) VALUES (%s, %s) RETURNING id",
                    (account, amount),
                ).fetchone()
                assert row is not None
                limits[account] = int(row["id"])
                expected[account].append(
                    ("LimitSet", {"limit_id": limits[account], "amount": amount})
                )
            else:
                amount = rng.randrange(1000, 2000)
                db.execute(
                    "UPDATE account_limits SET amount = %s WHERE id = %s",
                    (amount, limits[account]),
                )
                expected[account].append(
                    ("LimitChanged", {"limit_id": limits[account], "amount": amount})
                )
    return expected


def test_split_aggregate_refused_then_derived_and_kept_in_commit_order(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with accounts_run(stack, settings, tmp_path, monkeypatch, "routing") as run:
        runner = CliRunner()
        connectors = tmp_path / "connectors"

        # -- Debezium's defaults: two topics for one aggregate. Refused, nothing deployed.
        write_connector_file(run, connectors, routing=None)
        apply = ["connectors", "apply", "--dir", str(connectors), run.connector]
        refused = runner.invoke(cli, apply)
        assert refused.exit_code == 1
        message = str(refused.exception)
        assert "account: its tables are written to 2 topics" in message
        assert f"transforms.account_aggregate.topic.replacement: {run.prefix}.public." in message
        assert run.connector not in run._connect.list_connectors()

        # -- routing: derive. The plan shows the derived keys; apply deploys them.
        write_connector_file(run, connectors, routing="derive")
        plan = runner.invoke(cli, ["connectors", "plan", "--dir", str(connectors), run.connector])
        assert plan.exit_code == 2, plan.output
        assert "routing derived for account" in plan.output
        assert any(
            "transforms.account_aggregate.type" in line and line.endswith("(derived)")
            for line in plan.output.splitlines()
        ), plan.output
        applied = runner.invoke(cli, ["-o", "json", *apply, "--wait", "--settle", "2"])
        assert applied.exit_code == 0, applied.output
        result = json.loads(applied.stdout)
        assert result["applied"] == [run.connector]
        checks = {c["check"] for report in result["preflight"] for c in report["checks"]}
        assert f"domain {DOMAIN}" not in checks  # every table is captured and known
        deployed = deployed_configs(run._connect)[run.connector]
        aggregate_topic = f"{run.prefix}.public.account_aggregate"
        assert deployed["transforms.account_aggregate.topic.replacement"] == aggregate_topic

        # -- what `cdcflow run` checks at start: the deployed connector keeps the order.
        description = load_description(DOMAIN)
        (check,) = [
            c
            for c in check_deployed(
                deployed_configs(run._connect), description, run.settings.transformer
            )
            if c.connector == run.connector
        ]
        assert check.report.findings == ()
        check_connectors_at_start(run.settings, DOMAIN)  # does not refuse

        run.register_contracts()
        run.start_transformer()
        expected = interleaved_writes(run)
        total = sum(len(v) for v in expected.values())
        records = run.read(run.topic_of(_AccountsEvent), total, avro=True, timeout_s=180)
        cdc_partitions = run._admin.list_topics(aggregate_topic, timeout=10).topics[aggregate_topic]
        run.stop_transformer()

    # Both tables' changes went through one CDC topic of four partitions.
    assert len(cdc_partitions.partitions) == 4
    assert len(records) == total
    received: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        value = record.value
        fields = {k: v for k, v in value.items() if k not in ("metadata", "account_id")}
        received[value["account_id"]].append((value["metadata"]["event_type"], fields))
    # Each account's events in the order its rows were committed, across both tables.
    assert dict(received) == dict(expected)
    # The test would notice a reordering: accounts mix both tables' events.
    assert all(
        {t for t, _ in events} >= {"AccountOpened", "LimitSet"} for events in expected.values()
    )


def test_preflight_checks_the_captured_tables_against_the_domain(
    stack: LocalStack, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with accounts_run(stack, settings, tmp_path, monkeypatch, "rpre") as run:
        with run.db() as db:
            db.execute("CREATE TABLE audit (id bigint PRIMARY KEY, note text)")
            db.execute("ALTER TABLE account_limits REPLICA IDENTITY DEFAULT")
        connectors = tmp_path / "connectors"
        directory = write_connector_file(run, connectors, routing="derive")
        path = directory / "accounts.json"
        body = json.loads(path.read_text())

        def preflight() -> dict[tuple[str, str], tuple[str, str | None]]:
            result = CliRunner().invoke(
                cli, ["-o", "json", "connectors", "preflight", "--dir", str(connectors)]
            )
            assert result.exit_code == 1, result.output
            (report,) = json.loads(result.stdout)["connectors"]
            return {
                (c["check"], c["detail"]): (c["level"], c["fix"])
                for c in report["checks"]
                if c["check"].startswith(("domain", "before image", "routing"))
            }

        # A table the rules need is not captured; a captured one the domain does not know.
        body["config"]["table.include.list"] = "public\\.accounts,public\\.audit"
        path.write_text(json.dumps(body))
        found = preflight()
        assert found == {
            (
                f"domain {DOMAIN}",
                "rules read public.account_limits, which this connector does not capture",
            ): ("fail", "add public.account_limits to table.include.list"),
            (
                f"domain {DOMAIN}",
                "captured tables the domain does not know: public.audit (the transformer "
                "dead-letters every change of them)",
            ): (
                "fail",
                "declare them in the domain (rules.known(...) or rules.ignore(...)), or drop "
                "them from table.include.list",
            ),
        }

        # Both tables captured; account_limits' identity is its key only.
        body["config"]["table.include.list"] = "public\\.accounts,public\\.account_limits"
        path.write_text(json.dumps(body))
        found = preflight()
        fix = "ALTER TABLE public.account_limits REPLICA IDENTITY FULL"
        assert found == {
            (
                "before image public.account_limits",
                "REPLICA IDENTITY DEFAULT: the before image carries only id, but "
                "limit_changed read(s) the old amount",
            ): ("fail", fix),
            (
                "routing public.account_limits",
                "it is partitioned by change.account_id, which a delete's before image does "
                "not carry (REPLICA IDENTITY DEFAULT): its deletes land on another partition "
                "(no rule maps its deletes today)",
            ): ("warn", fix),
        }

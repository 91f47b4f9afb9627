"""The secured stack: who is let in, who is refused, and that no secret is ever printed.

Against the test cluster of tests/chaos/cluster.py (stack.security=sasl_ssl):
Kafka's listeners take SASL/SCRAM-SHA-512 over TLS only, Connect's REST API
and the registry HTTP basic auth. cdcflow's commands and the transformer get
their credentials from settings (CDCFLOW_KAFKA__PROPERTIES,
CDCFLOW_CONNECT__USERNAME/PASSWORD, CDCFLOW_REGISTRY__USERNAME/PASSWORD),
and none of them prints a secret: not ``cdcflow settings``, not a plan, not
the transformer's log, not the stack's own logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tests.chaos.cluster import ClusterPipeline
from tests.chaos.support import start_group_at_end

pytestmark = pytest.mark.chaos


def _errors(conf: dict[str, Any], seconds: float = 15.0) -> list[KafkaError]:
    """The errors a producer with ``conf`` reports while it tries to connect."""
    errors: list[KafkaError] = []
    producer = Producer(conf | {"log_level": 0, "error_cb": errors.append})
    deadline = time.monotonic() + seconds
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    return errors


def test_kafka_lets_in_only_a_scram_user_over_tls(cluster: ClusterPipeline) -> None:
    conf = cluster.settings.kafka.client_config()
    meta = AdminClient(conf).list_topics(timeout=30)
    assert sorted(meta.brokers) == [1, 2, 3]

    wrong = _errors(conf | {"sasl.password": "not-the-password"})
    assert wrong and wrong[0].code() == KafkaError._AUTHENTICATION, wrong
    assert "SASL authentication error" in wrong[0].str()

    bootstrap = {"bootstrap.servers": conf["bootstrap.servers"]}
    for what, plain in [
        ("plaintext", bootstrap),
        (
            "TLS without SASL",
            bootstrap | {"security.protocol": "SSL", "ssl.ca.location": conf["ssl.ca.location"]},
        ),
    ]:
        with pytest.raises(KafkaException) as refused:
            AdminClient(plain | {"log_level": 0}).list_topics(timeout=5)
        assert refused.value.args[0].code() == KafkaError._TRANSPORT, what

    # A client that does not trust the stack's CA does not get as far as SASL.
    untrusted = _errors({k: v for k, v in conf.items() if k != "ssl.ca.location"})
    assert untrusted and "certificate verify failed" in untrusted[0].str(), untrusted


def test_connect_rest_api_answers_401_without_credentials(cluster: ClusterPipeline) -> None:
    url = cluster.settings.connect.url + "/connectors"
    password = cluster.env["CDCFLOW_CONNECT__PASSWORD"]
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("cdcflow", "wrong"), timeout=10).status_code == 401
    assert requests.get(url, auth=("cdcflow", password), timeout=10).json() == ["shop-postgres"]

    status = cluster.cli("connectors", "status")
    assert "shop-postgres" in status.stdout and "RUNNING" in status.stdout
    anonymous = dict(os.environ) | cluster.env
    del anonymous["CDCFLOW_CONNECT__USERNAME"], anonymous["CDCFLOW_CONNECT__PASSWORD"]
    refused = cluster.cli("connectors", "status", check=False, env=anonymous)
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr


def test_registry_answers_401_without_credentials(cluster: ClusterPipeline) -> None:
    url = cluster.settings.registry.url + "/subjects"
    password = cluster.env["CDCFLOW_REGISTRY__PASSWORD"]
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("cdcflow", "wrong"), timeout=10).status_code == 401
    subjects = requests.get(url, auth=("cdcflow", password), timeout=10).json()
    assert "shop.customer.events-shop.events.CustomerRegistered" in subjects

    cluster.cli("schemas", "check", "--registry", "--no-drift")
    anonymous = dict(os.environ) | cluster.env
    del anonymous["CDCFLOW_REGISTRY__USERNAME"], anonymous["CDCFLOW_REGISTRY__PASSWORD"]
    refused = cluster.cli(
        "schemas", "check", "--registry", "--no-drift", check=False, env=anonymous
    )
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr


def _secrets(cluster: ClusterPipeline) -> dict[str, str]:
    """Every password of the stack, by file name."""
    found = {
        path.name: path.read_text().strip()
        for path in cluster.stack.paths.secrets.glob("*.password")
    }
    assert {"kafka-admin.password", "kafka-cdcflow.password", "kafka-connect.password"} <= set(
        found
    )
    assert all(len(secret) >= 16 for secret in found.values())
    return found


def test_no_secret_is_printed(cluster: ClusterPipeline, tmp_path: Path) -> None:
    outputs: dict[str, str] = {}

    def run(*args: str, **kwargs: Any) -> None:
        proc = cluster.cli(*args, **kwargs)
        name = " ".join(args)
        outputs[name if name not in outputs else f"{name} ({len(outputs)})"] = (
            proc.stdout + proc.stderr
        )

    run("settings")
    run("-o", "json", "settings")
    run("connectors", "plan")
    run("connectors", "status")
    # The cluster's home shares the local stack's PostgreSQL, which it shows as
    # not its own (exit 1); what is printed is what counts here.
    run("stack", "status", check=False)
    run("schemas", "check", "--registry", "--no-drift")
    # The transformer, at debug level, with a group of its own that starts at
    # the topics' ends: it logs in, joins, commits, and stops on SIGTERM.
    group = f"chaos-secret-{uuid.uuid4().hex[:6]}"
    start_group_at_end(cluster.settings, group)
    env = (
        os.environ
        | cluster.env
        | {
            "CDCFLOW_TRANSFORMER__GROUP_ID": group,
            "CDCFLOW_TRANSFORMER__TRANSACTIONAL_ID": group,
            "CDCFLOW_TRANSFORMER__DEAD_LETTER_TOPIC": f"cdcflow.dlq.{group}",
        }
    )
    log = tmp_path / "transformer.log"
    with log.open("wb") as out:
        transformer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "-vv",
                "run",
                "--instance",
                "s",
                "--metrics-port",
                "0",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "assigned shop.public." not in log.read_text():
            assert transformer.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the transformer never joined its group"
            time.sleep(0.5)
        time.sleep(12)  # a heartbeat record or two consumed, mapped and committed
    finally:
        transformer.terminate()
        code = transformer.wait(60)
    assert code == 0
    outputs["-vv run (transformer log)"] = log.read_text()
    assert '"committed"' in outputs["-vv run (transformer log)"]
    # Refused commands print no secret either (not even the wrong one given).
    env = os.environ | cluster.env | {"CDCFLOW_CONNECT__PASSWORD": "wrong-connect-secret"}
    run("connectors", "status", check=False, env=env)

    settings = outputs["settings"]
    assert "CDCFLOW_KAFKA__PROPERTIES" in settings and "sasl.username" in settings
    assert "'sasl.password': '********'" in settings
    logs = {
        f"log {path.name}": path.read_text(errors="replace")
        for path in cluster.stack.paths.logs.iterdir()
    }
    secrets = _secrets(cluster) | {"wrong": "wrong-connect-secret"}
    leaks = [
        f"{name} in {where!r}"
        for where, text in (outputs | logs).items()
        for name, secret in secrets.items()
        if secret in text
    ]
    assert not leaks, leaks
    print(
        f"[security] {len(secrets)} secrets checked in {len(outputs)} command outputs "
        f"and {len(logs)} stack logs: none printed",
        flush=True,
    )

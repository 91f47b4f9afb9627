"""deploy/k8s, checked without a cluster.

How each kind is checked:
- Kubernetes' own kinds (StatefulSet, Service, ConfigMap, PodDisruptionBudget)
  are validated with `kubernetes-validate` (PyPI), which ships the API's JSON
  schemas: the strict variant (unknown fields are errors), for the oldest
  version the manifests need (1.28: the pod-index label) and the newest the
  package knows.
- Strimzi's KafkaConnect and KafkaConnector get a structural test. No registry
  reachable here ships Strimzi's CRD schemas (its Maven artifact
  io.strimzi:api holds Java classes only; no PyPI package carries the CRDs),
  so the test checks what the v1beta2 CRDs and the Strimzi API reference
  require: known spec fields, types, forbidden config keys, mounts below
  /mnt. The Kubernetes parts embedded in them (env, volumes, volume mounts)
  are validated against kubernetes-validate's core/v1 definitions.
- Cross-references no schema sees: probes hit endpoints the transformer
  really serves, ports and names agree, selectors match labels, every
  CDCFLOW_* variable is a real setting, every connector placeholder can be
  resolved on the Connect pods.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from pipeline import __version__
from pipeline.cli.run import command as run_command
from pipeline.connect import load_connectors
from pipeline.connect.secrets import placeholders
from pipeline.settings import load_settings
from pipeline.transformer.metrics import Metrics
from tests.unit.deploy_support import unknown_settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
MIN_KUBERNETES = "1.28.0"
STRIMZI = "kafka.strimzi.io/v1beta2"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load_all() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


DOCS = load_all()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] == kind]


def one(kind: str) -> dict[str, Any]:
    found = of_kind(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def builtin_docs() -> Iterator[Any]:
    for path, doc in DOCS:
        if not doc["apiVersion"].startswith("kafka.strimzi.io/"):
            yield pytest.param(doc, id=f"{path.relative_to(K8S)}:{doc['kind']}")


# --------------------------------------------------------------------------- Kubernetes kinds


@pytest.mark.parametrize("version", [MIN_KUBERNETES, latest_version()])
@pytest.mark.parametrize("doc", list(builtin_docs()))
def test_builtin_kinds_are_valid_kubernetes(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_kubernetes_validation_can_fail() -> None:
    broken = json.loads(json.dumps(one("StatefulSet")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)
    broken = json.loads(json.dumps(one("StatefulSet")))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_every_manifest_is_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = sorted(kustomization["resources"])
    present = sorted(
        str(p.relative_to(K8S)) for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert listed == present


def test_no_secret_values_are_committed() -> None:
    assert of_kind("Secret") == []


# --------------------------------------------------------------------------- the transformer


def container() -> dict[str, Any]:
    containers = one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def test_statefulset_service_and_budget_select_the_pods() -> None:
    sts = one("StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    selector = sts["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = one("Service")
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    )


def test_each_pod_has_a_stable_instance_from_its_ordinal() -> None:
    c = container()
    assert c["args"][:2] == ["run", "--instance"]
    assert "--instance" in {o for p in run_command.params for o in p.opts}
    env = {e["name"]: e for e in c["env"]}
    for var in re.findall(r"\$\((\w+)\)", " ".join(c["args"])):
        assert var in env, f"args use $({var}), which the container does not define"
    instance = re.fullmatch(r"\$\((\w+)\)", c["args"][2])
    assert instance is not None
    field = env[instance[1]]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_replicas_do_not_exceed_the_cdc_partitions() -> None:
    specs = load_connectors(REPO / "connectors")
    partitions = min(int(s.config["topic.creation.default.partitions"]) for s in specs)
    assert one("StatefulSet")["spec"]["replicas"] <= partitions


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            status: int = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status


def test_probes_and_scraping_hit_endpoints_the_transformer_serves() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    config = one("ConfigMap")["data"]
    metrics_port = int(config["CDCFLOW_TRANSFORMER__METRICS_PORT"])
    probes = {
        "liveness": c["livenessProbe"]["httpGet"],
        "readiness": c["readinessProbe"]["httpGet"],
    }
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    for probe in probes.values():
        assert ports[probe["port"]] == metrics_port
    annotations = one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics_port
    service_port = one("Service")["spec"]["ports"][0]
    assert service_port["port"] == metrics_port and service_port["targetPort"] in ports

    # The paths exist: a transformer's HTTP endpoint answers them (503 before
    # it has partitions is an answer; 404 would mean a probe on a wrong path).
    metrics = Metrics()
    port = metrics.serve(0, host="127.0.0.1")
    try:
        assert http_status(port, probes["liveness"]["path"]) == 200
        assert http_status(port, probes["readiness"]["path"]) in (200, 503)
        assert http_status(port, annotations["prometheus.io/path"]) == 200
        assert http_status(port, "/no-such-path") == 404
    finally:
        metrics.close()


def test_configmap_and_secret_refs_are_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    c = container()
    config_map = one("ConfigMap")
    assert c["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    from_secrets = [e["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert unknown_settings([*config_map["data"], *from_secrets]) == []
    for key, value in config_map["data"].items():
        monkeypatch.setenv(key, value)
    for name in from_secrets:
        monkeypatch.setenv(name, "not-a-real-secret")
    settings = load_settings()
    props = settings.kafka.client_config("producer")
    assert props["sasl.password"] == "not-a-real-secret"  # merged with the ConfigMap's JSON
    assert props["security.protocol"] == "SASL_SSL"
    mounts = [PurePosixPath(m["mountPath"]) for m in c["volumeMounts"]]
    ca = PurePosixPath(props["ssl.ca.location"])
    assert any(m in ca.parents for m in mounts), "ssl.ca.location is in no mounted volume"
    assert settings.kafka.replication_factor == 3 and settings.kafka.min_insync_replicas == 2


def test_transformer_image_is_this_version() -> None:
    assert container()["image"].rpartition(":")[2] == __version__


# --------------------------------------------------------------------------- Strimzi


@pytest.fixture(scope="module")
def core_v1() -> dict[str, Any]:
    ref = resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{latest_version()}-local-strict/_definitions.json"
    )
    defs: dict[str, Any] = json.loads(ref.read_text())
    return defs


def validate_core(defs: dict[str, Any], kind: str, instance: Any) -> None:
    schema = {**defs, "$ref": f"#/$defs/io.k8s.api.core.v1.{kind}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


# Fields of the v1beta2 specs (KafkaConnectSpec, KafkaConnectorSpec).
CONNECT_SPEC = {
    "version",
    "replicas",
    "image",
    "bootstrapServers",
    "tls",
    "authentication",
    "config",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "jvmOptions",
    "jmxOptions",
    "logging",
    "clientRackInitImage",
    "rack",
    "metricsConfig",
    "tracing",
    "template",
    "externalConfiguration",
    "build",
    "plugins",
}
CONNECTOR_SPEC = {
    "class",
    "tasksMax",
    "autoRestart",
    "version",
    "config",
    "pause",
    "state",
    "listOffsets",
    "alterOffsets",
}
# Worker config Strimzi owns (KafkaConnectSpec.config), and the exceptions it allows.
FORBIDDEN_CONNECT_PREFIXES = (
    "ssl.",
    "sasl.",
    "security.",
    "listeners",
    "plugin.path",
    "rest.",
    "bootstrap.servers",
    "consumer.interceptor.classes",
    "producer.interceptor.classes",
)
ALLOWED_CONNECT_KEYS = {
    "ssl.endpoint.identification.algorithm",
    "ssl.cipher.suites",
    "ssl.protocol",
    "ssl.enabled.protocols",
}
FORBIDDEN_CONNECTOR_KEYS = {"name", "connector.class", "tasks.max", "connector.plugin.version"}


def test_strimzi_resources_have_the_required_shape(core_v1: dict[str, Any]) -> None:
    connects = of_kind("KafkaConnect")
    connectors = of_kind("KafkaConnector")
    assert len(connects) == 1 and connectors
    for doc in [*connects, *connectors]:
        assert doc["apiVersion"] == STRIMZI
        assert DNS_SUBDOMAIN.match(doc["metadata"]["name"])
        assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}

    connect = connects[0]
    spec = connect["spec"]
    assert set(spec) <= CONNECT_SPEC
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    assert isinstance(spec["bootstrapServers"], str) and spec["bootstrapServers"]
    assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1
    for key in spec["config"]:
        assert key in ALLOWED_CONNECT_KEYS or not key.startswith(FORBIDDEN_CONNECT_PREFIXES), key
    for cert in spec.get("tls", {}).get("trustedCertificates", []):
        assert cert["secretName"] and ("certificate" in cert) != ("pattern" in cert)
    if "authentication" in spec:
        auth = spec["authentication"]
        assert auth["type"] in {"tls", "scram-sha-256", "scram-sha-512", "plain", "oauth"}
        if auth["type"].startswith("scram"):
            assert set(auth["passwordSecret"]) == {"secretName", "password"}
    build = spec["build"]
    assert build["output"]["type"] in {"docker", "imagestream"} and build["output"]["image"]
    for plugin in build["plugins"]:
        assert DNS_LABEL.match(plugin["name"])
        for artifact in plugin["artifacts"]:
            assert artifact["type"] == "maven"
            assert {"group", "artifact", "version"} <= set(artifact)

    template = spec.get("template", {})
    volumes = {v["name"]: v for v in template.get("pod", {}).get("volumes", [])}
    for volume in volumes.values():
        assert DNS_LABEL.match(volume["name"])
        validate_core(core_v1, "Volume", volume)
    box = template.get("connectContainer", {})
    for mount in box.get("volumeMounts", []):
        validate_core(core_v1, "VolumeMount", mount)
        assert mount["name"] in volumes
        assert PurePosixPath("/mnt") in PurePosixPath(mount["mountPath"]).parents
    for env in box.get("env", []):
        validate_core(core_v1, "EnvVar", env)

    for connector in connectors:
        body = connector["spec"]
        assert set(body) <= CONNECTOR_SPEC
        assert connector["metadata"]["labels"]["strimzi.io/cluster"] == connect["metadata"]["name"]
        assert isinstance(body["class"], str) and body["class"]
        assert isinstance(body["tasksMax"], int) and body["tasksMax"] >= 1
        assert body.get("state", "running") in {"paused", "stopped", "running"}
        assert not FORBIDDEN_CONNECTOR_KEYS & set(body["config"])
        assert all(isinstance(v, str) for v in body["config"].values())


def test_every_connector_placeholder_resolves_on_the_connect_pods() -> None:
    connect = one("KafkaConnect")["spec"]
    config = connect["config"]
    assert config["config.providers"] == "env,file"
    box = connect.get("template", {}).get("connectContainer", {})
    env = {e["name"] for e in box.get("env", [])}
    mounted = {m["mountPath"] for m in box.get("volumeMounts", [])}
    allow = re.compile(config["config.providers.env.param.allowlist.pattern"])
    for connector in of_kind("KafkaConnector"):
        for key, value in connector["spec"]["config"].items():
            for provider, path, name in placeholders(value):
                if provider == "env":
                    assert name in env and allow.match(name), f"{key}: ${{env:{name}}}"
                else:
                    directory = str(PurePosixPath(path or name).parent)
                    assert directory in mounted, f"{key}: {path} is not mounted"
                    allowed = config["config.providers.file.param.allowed.paths"].split(",")
                    assert directory in allowed

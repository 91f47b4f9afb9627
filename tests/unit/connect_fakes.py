"""A fake Kafka Connect worker: a plain function standing in for the REST API.

Enough of the API for plan / apply / status logic: plugins, validate,
connectors (expand=info,status), config, status, delete. Every request is
recorded as (method, path) so tests can assert which calls were made.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.connect import CallableTransport, ConnectClient

FAKE_CLASS = "org.example.FakeSourceConnector"


class FakeConnect:
    def __init__(self) -> None:
        self.configs: dict[str, dict[str, str]] = {}
        self.states: dict[str, str] = {}
        self.task_states: dict[str, list[str]] = {}
        self.traces: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        # field -> message the validate endpoint reports
        self.invalid: dict[str, str] = {}

    def client(self) -> ConnectClient:
        return ConnectClient(
            "http://connect.test:8083",
            transport=CallableTransport(self),
            retries=0,
            sleep=lambda _: None,
        )

    def puts(self) -> list[str]:
        return [
            path for method, path in self.requests if method == "PUT" and path.endswith("/config")
        ]

    def _status(self, name: str) -> dict[str, Any]:
        tasks = [
            {
                "id": i,
                "state": s,
                "worker_id": "w1:8083",
                **({"trace": self.traces[name]} if s == "FAILED" else {}),
            }
            for i, s in enumerate(self.task_states.get(name, ["RUNNING"]))
        ]
        return {
            "name": name,
            "connector": {"state": self.states.get(name, "RUNNING"), "worker_id": "w1:8083"},
            "tasks": tasks,
            "type": "source",
        }

    def __call__(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(url)
        path = unquote(parts.path)
        self.requests.append((method, path))
        segments = [s for s in path.split("/") if s]
        if segments == ["connector-plugins"]:
            return 200, [{"class": FAKE_CLASS, "type": "source", "version": "1.0"}]
        if segments[:1] == ["connector-plugins"] and segments[-1] == "validate":
            configs = [
                {"definition": {"name": key}, "value": {"name": key, "value": value, "errors": []}}
                for key, value in body.items()
            ]
            for key, message in self.invalid.items():
                configs.append(
                    {"definition": {"name": key}, "value": {"name": key, "errors": [message]}}
                )
            return 200, {
                "name": segments[1],
                "error_count": len(self.invalid),
                "groups": [],
                "configs": configs,
            }
        if segments == ["connectors"] and method == "GET":
            expand = parse_qs(parts.query).get("expand")
            if not expand:
                return 200, sorted(self.configs)
            out = {}
            for name, config in self.configs.items():
                entry: dict[str, Any] = {}
                if "info" in expand:
                    entry["info"] = {
                        "name": name,
                        "config": dict(config),
                        "tasks": [],
                        "type": "source",
                    }
                if "status" in expand:
                    entry["status"] = self._status(name)
                out[name] = entry
            return 200, out
        if segments[:1] == ["connectors"] and len(segments) >= 2:
            name = segments[1]
            rest = segments[2:]
            if rest == ["config"] and method == "PUT":
                created = name not in self.configs
                self.configs[name] = dict(body)
                return (201 if created else 200), {
                    "name": name,
                    "config": body,
                    "tasks": [],
                    "type": "source",
                }
            if name not in self.configs:
                return 404, {"error_code": 404, "message": f"Connector {name} not found"}
            if rest == ["config"]:
                return 200, self.configs[name]
            if rest == ["status"]:
                return 200, self._status(name)
            if rest == [] and method == "DELETE":
                del self.configs[name]
                return 204, None
        return 404, {"error_code": 404, "message": f"no fake for {method} {path}"}

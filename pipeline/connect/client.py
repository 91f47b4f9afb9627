"""The Kafka Connect REST client: one session, one method per endpoint.

The private :meth:`ConnectClient._request` owns timeouts, retries and error
mapping; the public methods only name the endpoint. Retried, with exponential
backoff: 409 (the worker group is rebalancing, or the leader is not known
yet), 5xx (including Connect's "request timed out"), a refused or failed
connection, and a read timeout of an idempotent method. Everything else is an
answer, and an error answer becomes a :class:`~pipeline.errors.ConnectError`
carrying the status, Connect's ``error_code`` and message, and the request.

Transport seam: ``transport`` is a ``requests`` adapter mounted on the
session. :class:`CallableTransport` turns a plain function into one, so unit
tests stand a function in for the worker.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import BaseAdapter

from pipeline.errors import ConnectError, ConnectUnreachable
from pipeline.settings import ConnectSettings

__all__ = ["CallableTransport", "ConnectClient", "Handler"]

log = logging.getLogger(__name__)

# (method, url, json body or None) -> (status, json body or None)
Handler = Callable[[str, str, Any], tuple[int, Any]]

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


class CallableTransport(BaseAdapter):
    """A ``requests`` adapter that answers every request by calling ``handler``.

    ``handler(method, url, body)`` returns ``(status, body)``; it may raise
    ``requests.ConnectionError`` / ``requests.Timeout`` to play an absent worker.
    """

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        body = request.body
        if isinstance(body, bytes):
            body = body.decode()
        payload = json.loads(body) if body else None
        status, answer = self.handler(request.method or "GET", request.url or "", payload)
        response = requests.Response()
        response.status_code = status
        response.request = request
        response.url = request.url or ""
        response.headers["Content-Type"] = "application/json"
        response._content = b"" if answer is None else json.dumps(answer).encode()
        return response

    def close(self) -> None:
        pass


def _safe_url(url: str) -> str:
    # Never show credentials given in the URL itself (http://user:pass@host).
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts)


def _segment(name: str) -> str:
    return quote(name, safe="")


class ConnectClient:
    """Kafka Connect REST API (https://kafka.apache.org/documentation/#connect_rest).

    Every method raises :class:`~pipeline.errors.ConnectUnreachable` when the
    worker does not answer after the retries, and
    :class:`~pipeline.errors.ConnectError` when it answers with an error.
    """

    def __init__(
        self,
        url: str = "http://localhost:8083",
        *,
        auth: tuple[str, str] | None = None,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        transport: BaseAdapter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json"})
        if auth:
            self._session.auth = auth
        if transport is not None:
            self._session.mount("http://", transport)
            self._session.mount("https://", transport)

    @classmethod
    def from_settings(cls, settings: ConnectSettings, **kwargs: Any) -> ConnectClient:
        auth = None
        if settings.username:
            secret = settings.password.get_secret_value() if settings.password else ""
            auth = (settings.username, secret)
        return cls(
            settings.url,
            auth=auth,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            **kwargs,
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the REST layer --------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * (2**attempt)))

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        body: Any = None,
    ) -> Any:
        url = self.url + path
        shown = _safe_url(url)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            started = time.monotonic()
            try:
                response = self._session.request(
                    method, url, params=params, json=body, timeout=self.timeout_s
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # A read timeout means the request may have been applied: only
                # methods that are safe to repeat are sent again.
                retryable = not isinstance(exc, requests.ReadTimeout) or method in _IDEMPOTENT
                if retryable and not last:
                    delay = self._delay(attempt)
                    log.info(
                        "%s %s: %s; retrying in %.1fs", method, shown, type(exc).__name__, delay
                    )
                    self._sleep(delay)
                    continue
                raise ConnectUnreachable(
                    f"Kafka Connect at {_safe_url(self.url)} did not answer: {type(exc).__name__}",
                    method=method,
                    url=shown,
                    hint="is the Connect worker running? (cdcflow stack status; the URL is "
                    "setting connect.url, env CDCFLOW_CONNECT__URL)",
                ) from exc
            status = response.status_code
            log.debug(
                "%s %s -> %s (%.0f ms)", method, shown, status, (time.monotonic() - started) * 1000
            )
            if (status == 409 or status >= 500) and not last:
                delay = self._delay(attempt)
                log.info("%s %s -> %s; retrying in %.1fs", method, shown, status, delay)
                self._sleep(delay)
                continue
            if status >= 400:
                raise self._error(method, response)
            if status == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise ConnectError(
                    "the answer is not JSON",
                    status=status,
                    method=method,
                    url=shown,
                    body=response.text[:500],
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, method: str, response: requests.Response) -> ConnectError:
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = response.text
        error_code: int | None = None
        message = response.reason or f"HTTP {response.status_code}"
        if isinstance(body, dict):
            error_code = body.get("error_code")
            message = str(body.get("message") or message)
        elif isinstance(body, str) and body.strip():
            message = body.strip()[:500]
        hint = None
        if response.status_code == 409:
            hint = "the Connect group is rebalancing; try again in a moment"
        return ConnectError(
            message,
            status=response.status_code,
            error_code=error_code,
            method=method,
            url=_safe_url(response.url),
            body=body,
            hint=hint,
        )

    # -- cluster ---------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        """``GET /``: the worker's version, commit and Kafka cluster id."""
        result: dict[str, Any] = self._request("GET", "/")
        return result

    def connector_plugins(self) -> list[dict[str, Any]]:
        """``GET /connector-plugins``: the connector classes installed on the worker."""
        result: list[dict[str, Any]] = self._request("GET", "/connector-plugins")
        return result

    def validate(self, connector_class: str, config: Mapping[str, str]) -> dict[str, Any]:
        """``PUT /connector-plugins/{class}/config/validate``: Connect's ConfigInfos.

        ``{"name", "error_count", "groups", "configs": [{"definition": {...},
        "value": {"name", "value", "recommended_values", "errors", "visible"}}]}``
        """
        path = f"/connector-plugins/{_segment(connector_class)}/config/validate"
        result: dict[str, Any] = self._request("PUT", path, body=dict(config))
        return result

    # -- connectors ------------------------------------------------------------

    def list_connectors(self) -> list[str]:
        """``GET /connectors``: the names of every connector on the cluster."""
        result: list[str] = self._request("GET", "/connectors")
        return result

    def list_connectors_expanded(self, *expand: str) -> dict[str, dict[str, Any]]:
        """``GET /connectors?expand=info&expand=status``: every connector with its details."""
        result: dict[str, dict[str, Any]] = self._request(
            "GET", "/connectors", params=[("expand", e) for e in (expand or ("info", "status"))]
        )
        return result

    def create_connector(self, name: str, config: Mapping[str, str]) -> dict[str, Any]:
        """``POST /connectors``: create; fails with 409 if it exists (use :meth:`put_config`)."""
        result: dict[str, Any] = self._request(
            "POST", "/connectors", body={"name": name, "config": dict(config)}
        )
        return result

    def get_connector(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}``: name, config, tasks and type."""
        result: dict[str, Any] = self._request("GET", f"/connectors/{_segment(name)}")
        return result

    def get_config(self, name: str) -> dict[str, str]:
        """``GET /connectors/{name}/config``: the stored config, placeholders unresolved."""
        result: dict[str, str] = self._request("GET", f"/connectors/{_segment(name)}/config")
        return result

    def put_config(self, name: str, config: Mapping[str, str]) -> dict[str, Any]:
        """``PUT /connectors/{name}/config``: create or replace the whole config."""
        result: dict[str, Any] = self._request(
            "PUT", f"/connectors/{_segment(name)}/config", body=dict(config)
        )
        return result

    def status(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/status``: connector and task states, worker ids, traces."""
        result: dict[str, Any] = self._request("GET", f"/connectors/{_segment(name)}/status")
        return result

    def tasks(self, name: str) -> list[dict[str, Any]]:
        """``GET /connectors/{name}/tasks``: the task ids and their configs."""
        result: list[dict[str, Any]] = self._request("GET", f"/connectors/{_segment(name)}/tasks")
        return result

    def task_status(self, name: str, task: int) -> dict[str, Any]:
        """``GET /connectors/{name}/tasks/{task}/status``."""
        result: dict[str, Any] = self._request(
            "GET", f"/connectors/{_segment(name)}/tasks/{task}/status"
        )
        return result

    def topics(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/topics``: the topics the connector has written to."""
        result: dict[str, Any] = self._request("GET", f"/connectors/{_segment(name)}/topics")
        return result

    def restart(
        self, name: str, *, include_tasks: bool = True, only_failed: bool = False
    ) -> dict[str, Any] | None:
        """``POST /connectors/{name}/restart?includeTasks=&onlyFailed=``.

        Returns the state Connect answers with (202), or None when only the
        connector instance was restarted (204).
        """
        params = {
            "includeTasks": str(include_tasks).lower(),
            "onlyFailed": str(only_failed).lower(),
        }
        result: dict[str, Any] | None = self._request(
            "POST", f"/connectors/{_segment(name)}/restart", params=params
        )
        return result

    def restart_task(self, name: str, task: int) -> None:
        """``POST /connectors/{name}/tasks/{task}/restart``."""
        self._request("POST", f"/connectors/{_segment(name)}/tasks/{task}/restart")

    def pause(self, name: str) -> None:
        """``PUT /connectors/{name}/pause``: tasks stay assigned but stop processing."""
        self._request("PUT", f"/connectors/{_segment(name)}/pause")

    def resume(self, name: str) -> None:
        """``PUT /connectors/{name}/resume``: from PAUSED or STOPPED back to RUNNING."""
        self._request("PUT", f"/connectors/{_segment(name)}/resume")

    def stop(self, name: str) -> None:
        """``PUT /connectors/{name}/stop``: shut down connector and tasks; keeps config, offsets."""
        self._request("PUT", f"/connectors/{_segment(name)}/stop")

    def delete(self, name: str) -> None:
        """``DELETE /connectors/{name}``: stop it and remove its config (offsets stay)."""
        self._request("DELETE", f"/connectors/{_segment(name)}")

    def offsets(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/offsets``: ``{"offsets": [{"partition", "offset"}]}``."""
        result: dict[str, Any] = self._request("GET", f"/connectors/{_segment(name)}/offsets")
        return result

    def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> dict[str, Any]:
        """``PATCH /connectors/{name}/offsets``; the connector must be STOPPED."""
        result: dict[str, Any] = self._request(
            "PATCH", f"/connectors/{_segment(name)}/offsets", body={"offsets": offsets}
        )
        return result

    def reset_offsets(self, name: str) -> dict[str, Any]:
        """``DELETE /connectors/{name}/offsets``; the connector must be STOPPED."""
        result: dict[str, Any] = self._request("DELETE", f"/connectors/{_segment(name)}/offsets")
        return result

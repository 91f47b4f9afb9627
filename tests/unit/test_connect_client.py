"""The REST client's retry and error logic, with a plain function as the worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from pipeline.connect import CallableTransport, ConnectClient
from pipeline.errors import ConnectError, ConnectUnreachable

URL = "http://connect.test:8083"


class Script:
    """Answers requests from a list, one per call, recording them."""

    def __init__(self, *answers: tuple[int, Any] | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        self.calls.append((method, url, body))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def client(
    handler: Callable[[str, str, Any], tuple[int, Any]], sleeps: list[float], retries: int = 3
) -> ConnectClient:
    return ConnectClient(
        URL,
        transport=CallableTransport(handler),
        retries=retries,
        backoff_s=0.5,
        max_backoff_s=1.5,
        sleep=sleeps.append,
    )


@pytest.mark.parametrize("status", [409, 500, 503])
def test_retries_409_and_5xx_with_backoff_then_succeeds(status: int) -> None:
    script = Script(
        (status, {"error_code": status, "message": "busy"}), (status, None), (200, ["a"])
    )
    sleeps: list[float] = []
    assert client(script, sleeps).list_connectors() == ["a"]
    assert len(script.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_backoff_is_capped() -> None:
    script = Script(*[(500, None)] * 4, (200, []))
    sleeps: list[float] = []
    client(script, sleeps, retries=4).list_connectors()
    assert sleeps == [0.5, 1.0, 1.5, 1.5]


def test_gives_up_with_status_code_message_and_request() -> None:
    script = Script(*[(409, {"error_code": 409, "message": "rebalance in progress"})] * 4)
    sleeps: list[float] = []
    with pytest.raises(ConnectError) as err:
        client(script, sleeps).put_config("orders", {"a": "1"})
    exc = err.value
    assert (exc.status, exc.error_code, exc.method) == (409, 409, "PUT")
    assert exc.url == f"{URL}/connectors/orders/config"
    assert "rebalance in progress" in str(exc)
    assert exc.hint and "rebalancing" in exc.hint
    assert len(script.calls) == 4 and len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    script = Script((status, {"error_code": status, "message": "Connector x not found"}))
    with pytest.raises(ConnectError) as err:
        client(script, []).status("x")
    assert err.value.status == status
    assert err.value.body == {"error_code": status, "message": "Connector x not found"}
    assert len(script.calls) == 1


def test_unreachable_names_the_url() -> None:
    script = Script(*[requests.ConnectionError("refused")] * 4)
    sleeps: list[float] = []
    with pytest.raises(ConnectUnreachable) as err:
        client(script, sleeps).list_connectors()
    assert URL in str(err.value)
    assert err.value.hint and "CDCFLOW_CONNECT__URL" in err.value.hint
    assert len(script.calls) == 4


def test_read_timeout_is_retried_only_for_idempotent_methods() -> None:
    get = Script(requests.ReadTimeout(), (200, []))
    assert client(get, []).list_connectors() == []
    post = Script(requests.ReadTimeout(), (202, {}))
    with pytest.raises(ConnectUnreachable):
        client(post, []).restart("x")
    assert len(post.calls) == 1


def test_names_are_quoted_and_bodies_and_params_sent() -> None:
    script = Script(
        (202, {"name": "a/b", "connector": {"state": "RESTARTING"}, "tasks": []}), (204, None)
    )
    c = client(script, [])
    assert c.restart("a/b", only_failed=True)["name"] == "a/b"
    method, url, _ = script.calls[0]
    assert method == "POST"
    assert url == f"{URL}/connectors/a%2Fb/restart?includeTasks=true&onlyFailed=true"
    assert c.stop("a/b") is None


def test_credentials_in_the_url_are_not_shown() -> None:
    script = Script((500, None))
    c = ConnectClient(
        "http://admin:hunter22@connect.test:8083", transport=CallableTransport(script), retries=0
    )
    with pytest.raises(ConnectError) as err:
        c.list_connectors()
    assert "hunter22" not in str(err.value) and "hunter22" not in (err.value.url or "")


def test_validate_sends_config_to_the_plugin_path() -> None:
    script = Script((200, {"name": "C", "error_count": 0, "groups": [], "configs": []}))
    client(script, []).validate("io.example.C", {"a": "1"})
    assert script.calls == [
        ("PUT", f"{URL}/connector-plugins/io.example.C/config/validate", {"a": "1"})
    ]

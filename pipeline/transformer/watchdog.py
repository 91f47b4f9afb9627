"""A deadline for client calls that may never return.

librdkafka's ``send_offsets_to_transaction`` can block for good when the
broker that coordinated the consumer group leaves the cluster: the client
decommissions that broker but keeps it cached as the group's coordinator, and
waits for a state change of it that never comes (librdkafka issues #5511 and
#5456, open in 2.16: the call's own timeout is not applied). The transformer
runs such a call through :func:`bounded` and, past the deadline, gives up on
the producer instead of on the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import CallHung

__all__ = ["bounded"]

T = TypeVar("T")


def bounded(call: Callable[[], T], *, seconds: float, what: str) -> T:
    """``call()``, or :class:`CallHung` when it has not returned after ``seconds``.

    The call runs in a daemon thread, which is left behind when it hangs: it
    holds the only other reference to the client, so a client that ever
    returns is released there, never on the caller's thread (releasing a
    wedged librdkafka handle blocks).

    Raises:
        CallHung: the deadline passed.
        BaseException: whatever ``call`` raised.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"bounded-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CallHung(f"{what} did not return within {seconds:.0f}s")
    if failure:
        raise failure[0]
    return outcome[0]

"""``cdcflow`` finds a domain package in the directory it runs in, as ``python -m`` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DOMAIN = """
from pipeline.cdc import Change
from pipeline.events import DomainEvent
from pipeline.mapping import Rules


class ParcelSent(DomainEvent):
    __aggregate__ = "parcel"
    __aggregate_id__ = "parcel_id"
    __namespace__ = "post.events"
    parcel_id: int


rules = Rules("post")


@rules.on("public.parcels", ops="c")
def parcel_sent(change: Change) -> ParcelSent:
    return ParcelSent(parcel_id=change.new("id"))
"""


def test_a_domain_package_in_the_working_directory_is_found(tmp_path: Path) -> None:
    package = tmp_path / "postdomain"
    package.mkdir()
    (package / "__init__.py").write_text(DOMAIN)
    script = Path(sys.executable).with_name("cdcflow")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(script), "-o", "json", "domain", "describe", "--domain", "postdomain"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert [a["aggregate"] for a in described["aggregates"]] == ["parcel"]
    assert [t["table"] for t in described["aggregates"][0]["tables"]] == ["public.parcels"]

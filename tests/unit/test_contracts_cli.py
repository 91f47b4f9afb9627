"""``cdcflow schemas`` end to end on a scratch git repository (no services)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main

DOMAIN = ["--domain", "tests.unit.contract_models"]
WIDGET = Path("schemas/testshop.events/WidgetMade.avsc")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run like the console script, which exits with what main() returns or raises."""
    try:
        code = main(["schemas", *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def record(*fields: dict[str, Any], name: str = "E") -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "x", "fields": list(fields)}, indent=2
    )


def contracts_then_one_removed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A commit with the generated contracts and one more, which is then deleted."""
    run(capsys, "generate", *DOMAIN)
    old = repo / "schemas/x/Gone.avsc"
    old.parent.mkdir(parents=True)
    old.write_text(record({"name": "id", "type": "long"}, name="Gone"))
    commit(repo, "v1")
    old.unlink()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_generate_then_check_clean(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", *DOMAIN)
    assert code == 0
    assert f"written   {WIDGET}" in out
    assert (repo / "schemas/compatibility.yaml").exists()
    code, out, _ = run(capsys, "generate", *DOMAIN)
    assert f"unchanged {WIDGET}" in out
    code, out, _ = run(capsys, "check", *DOMAIN)
    assert code == 0, out
    assert out.strip().endswith("ok: 2 contracts checked, 0 errors, 0 warnings")


def test_drift_is_an_error_with_its_place(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "generate", *DOMAIN)
    text = WIDGET.read_text().replace(
        '"weight",\n      "type": "double"', '"weight",\n      "type": "float"'
    )
    WIDGET.write_text(text)
    code, out, _ = run(capsys, "check", *DOMAIN)
    assert code == 1
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"float"' in t)
    assert (
        f"error[schema-drift] {WIDGET}: WidgetMade: the file differs from the model at $.fields["
        in out
    )
    assert "hint: run 'cdcflow schemas generate'" in out
    code, out, _ = run(capsys, "check", *DOMAIN, "--format", "github")
    assert f"::error file={WIDGET},line={line},title=schema-drift::" in out


def test_missing_and_invalid_files(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "generate", *DOMAIN)
    WIDGET.write_text('{"type": "record",\n "name": }\n')
    scrapped = Path("schemas/testshop.events/WidgetScrapped.avsc")
    scrapped.unlink()
    code, out, _ = run(capsys, "check", *DOMAIN)
    assert code == 1
    assert f"error[schema-invalid] {WIDGET}: {WIDGET}:2:10: invalid JSON: Expecting value" in out
    assert (
        f"error[schema-missing] {scrapped}: "
        "testshop.events.WidgetScrapped has no committed contract" in out
    )


def test_against_a_ref_transitive(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / "schemas/x/E.avsc"
    path.parent.mkdir(parents=True)
    path.write_text(record({"name": "id", "type": "long"}))
    first = commit(repo, "v1")
    path.write_text(
        record({"name": "id", "type": "long"}, {"name": "email", "type": "string", "default": ""})
    )
    commit(repo, "v2")
    path.write_text(record({"name": "id", "type": "long"}, {"name": "email", "type": "string"}))

    code, out, _ = run(capsys, "check", *DOMAIN, "--no-drift", "--against", "HEAD")
    assert code == 1
    assert (
        "error[field-added-without-default] schemas/x/E.avsc: E.email: "
        "field added without a default (string): "
        "consumers on the new schema cannot read old events "
        f"(FULL_TRANSITIVE, against {first[:9]})"
    ) in out

    # Against the latest version only, the change is fine.
    (repo / "schemas/compatibility.yaml").write_text("default: FULL\n")
    code, out, _ = run(capsys, "check", *DOMAIN, "--no-drift", "--against", "HEAD")
    assert code == 0, out


def test_against_a_missing_ref(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "generate", *DOMAIN)
    commit(repo, "only commit")
    code, out, _ = run(capsys, "check", *DOMAIN, "--against", "HEAD~1", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert [p["rule"] for p in report["problems"]] == ["history-unavailable"]
    assert "git ref 'HEAD~1' names no commit here" in report["problems"][0]["message"]


def test_removed_contract_and_shallow_clone(
    repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contracts_then_one_removed(repo, capsys)
    commit(repo, "v2")
    clone = tmp_path_factory.mktemp("shallow") / "c"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    monkeypatch.chdir(clone)
    code, out, _ = run(capsys, "check", *DOMAIN, "--against", "HEAD")
    assert code == 0, out
    assert "note: shallow clone" in out
    code, out, _ = run(capsys, "check", *DOMAIN, "--against", "HEAD~1")
    assert code == 1
    assert "this is a shallow clone" in out


def test_removed_contract_is_a_warning(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contracts_then_one_removed(repo, capsys)
    code, out, _ = run(capsys, "check", *DOMAIN, "--against", "HEAD")
    assert code == 0
    assert (
        "warning[schema-removed] schemas/x/Gone.avsc: the contract exists at HEAD and is gone now"
        in out
    )


def test_registry_unreachable_offline_checks_still_run(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "generate", *DOMAIN)
    WIDGET.write_text(WIDGET.read_text().replace('"double"', '"float"'))
    monkeypatch.setenv("CDCFLOW_REGISTRY__URL", "http://127.0.0.1:9/apis/ccompat/v7")
    code, out, _ = run(capsys, "check", *DOMAIN, "--registry")
    assert code == 1
    assert (
        "error[registry-unreachable] schemas: "
        "schema registry at http://127.0.0.1:9/apis/ccompat/v7 did not answer" in out
    )
    assert "error[schema-drift]" in out


def test_unknown_level_is_a_config_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "generate", *DOMAIN)
    (repo / "schemas/compatibility.yaml").write_text("default: SOMETIMES\n")
    code, _, err = run(capsys, "check", *DOMAIN)
    assert code == 78
    assert "unknown compatibility level 'SOMETIMES'; allowed: BACKWARD, BACKWARD_TRANSITIVE" in err


def test_model_that_avro_cannot_express(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", "--domain", "tests.unit.contract_models_bad")
    assert code == 1
    assert (
        "error[model-invalid] schemas/bad.events/Priced.avsc: "
        "Priced.price: a Decimal needs max_digits" in out
    )

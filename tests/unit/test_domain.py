"""The Domain object, how ``--domain`` finds it, the import root, and what ``run`` imports."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline
from pipeline import Change, Domain, DomainEvent, Rules, changed_to
from pipeline.domain import domain_events, load_domain
from pipeline.errors import ConfigError
from pipeline.events.naming import event_domain, event_subject, event_topic
from pipeline.settings import EXAMPLE_DOMAIN

ROOT = Path(__file__).resolve().parents[2]


class _ParcelEvent(DomainEvent):
    __aggregate__ = "parcel"
    __aggregate_id__ = "parcel_id"
    __namespace__ = "post.events"
    parcel_id: int


class ParcelSent(_ParcelEvent):
    pass


class ParcelLost(_ParcelEvent):
    __domain__ = "elsewhere"


def _rules() -> Rules:
    rules = Rules()

    @rules.on("public.parcels", ops="u", when=changed_to("status", "sent"))
    def parcel_sent(change: Change) -> ParcelSent:
        return ParcelSent(parcel_id=change.new("id"))

    return rules


def test_a_domain_names_the_topics_of_its_events() -> None:
    rules = _rules()
    domain = Domain("post", events=[ParcelSent], rules=rules)
    assert domain.events == (ParcelSent,)
    assert domain.topics == ["post.parcel.events"]
    assert event_domain(ParcelSent) == "post"
    assert event_topic(ParcelSent) == "post.parcel.events"
    assert event_subject(ParcelSent) == "post.parcel.events-post.events.ParcelSent"
    assert rules.domain == "post"  # an unnamed Rules takes the domain's name
    assert repr(domain) == "Domain('post', 1 events, 1 rules, 0 projections)"


def test_a_domain_refuses_what_does_not_fit() -> None:
    with pytest.raises(ConfigError, match="declares no event types"):
        Domain("post", events=[], rules=_rules())
    with pytest.raises(ConfigError, match="rules must be a Rules"):
        Domain("post", events=[ParcelSent], rules=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"declares __domain__ = 'elsewhere'.*'post'"):
        Domain("post", events=[ParcelLost], rules=_rules())
    with pytest.raises(ConfigError, match="not DomainEvent classes"):
        Domain("post", events=[str], rules=_rules())  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="plain word"):
        Domain("post office", events=[ParcelSent], rules=_rules())
    with pytest.raises(ConfigError, match="not Projection objects"):
        Domain("post", events=[ParcelSent], rules=_rules(), projections=["x"])  # type: ignore[list-item]


PACKAGE = {
    "__init__.py": """
        from pipeline import Domain
        from {pkg} import events
        from {pkg}.mappings import rules

        domain = Domain("{name}", events=events, rules=rules)
    """,
    "events.py": """
        from pipeline import DomainEvent

        class _Base(DomainEvent):
            __aggregate__ = "crate"
            __aggregate_id__ = "crate_id"
            crate_id: int

        class CrateFilled(_Base):
            pass

        class CrateEmptied(_Base):
            pass
    """,
    "mappings.py": """
        from pipeline import Change, Rules
        from {pkg}.events import CrateFilled

        rules = Rules()

        @rules.on("public.crates", ops="c")
        def filled(change: Change) -> CrateFilled:
            return CrateFilled(crate_id=change.new("id"))
    """,
    "other.py": """
        VALUE = 1
    """,
}


def _package(root: Path, pkg: str, files: dict[str, str], name: str = "") -> None:
    (root / pkg).mkdir()
    for file, text in files.items():
        body = textwrap.dedent(text).format(pkg=pkg, name=name or pkg)
        (root / pkg / file).write_text(body)


def test_every_documented_form_of_domain_finds_the_same_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "cratepkg", PACKAGE, name="depot")
    monkeypatch.syspath_prepend(str(tmp_path))
    domain = load_domain("cratepkg")
    assert isinstance(domain, Domain) and domain.name == "depot"
    for spec in ("cratepkg:domain", "cratepkg.mappings", "cratepkg.events", "cratepkg.other"):
        assert load_domain(spec) is domain, spec
    assert [e.__name__ for e in domain.events] == ["CrateEmptied", "CrateFilled"]
    assert domain.topics == ["depot.crate.events"]
    assert [e.__name__ for e in domain_events("cratepkg.mappings")] == [
        "CrateEmptied",
        "CrateFilled",
    ]


def test_a_wrong_domain_lists_what_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "cratepkg2", PACKAGE)
    (tmp_path / "lonely.py").write_text("from pipeline import Rules\nbook = Rules()\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="has no Domain named 'rules'") as raised:
        load_domain("cratepkg2:rules")
    assert raised.value.hint == "Domain objects in cratepkg2: domain"
    with pytest.raises(ConfigError, match="declares no domain") as raised:
        load_domain("lonely")
    assert "Domain objects: none; Rules: book; event classes: none" in raised.value.message
    assert "--domain mypkg:domain" in (raised.value.hint or "")
    with pytest.raises(ConfigError, match="cannot import domain module 'no_such_pkg_x'"):
        load_domain("no_such_pkg_x")


def test_a_package_without_a_domain_object_works_by_the_old_conventions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {k: v for k, v in PACKAGE.items() if k != "__init__.py"} | {"__init__.py": ""}
    _package(tmp_path, "oldstyle", files)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The README's form: the rules module; its events are found in the package.
    domain = load_domain("oldstyle.mappings")
    assert [e.__name__ for e in domain.events] == ["CrateEmptied", "CrateFilled"]
    assert load_domain("oldstyle").rules is domain.rules
    # Named, as before, after the events' namespace: their topics do not move.
    assert domain.topics == ["oldstyle.crate.events"]


def test_the_shop_declares_its_domain() -> None:
    shop = load_domain(EXAMPLE_DOMAIN)
    assert shop.name == "shop"
    assert shop.topics == ["shop.customer.events", "shop.order.events", "shop.product.events"]
    assert [p.name for p in shop.projections] == ["shop_orders_by_customer", "shop_order_timeline"]
    assert len(shop.events) == 10


def test_nothing_generic_imports_the_shop() -> None:
    shop = ROOT / "pipeline" / "domains" / "shop"
    importing = re.compile(r"^\s*(from|import)\s+pipeline\.domains\.shop\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "pipeline").rglob("*.py")
        if shop not in path.parents and importing.search(path.read_text())
    ]
    assert offenders == []
    # The settings name it once, as the default of a fresh checkout.
    assert (ROOT / "pipeline" / "settings.py").read_text().count("domains.shop") == 1


def test_the_import_root_exports_what_a_domain_author_needs() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name
    assert {"Domain", "DomainEvent", "Change", "Rules", "Projection", "Upcasters", "where"} <= set(
        pipeline.__all__
    )
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = pipeline.Nope  # type: ignore[attr-defined]


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(done.stdout.split())


def test_import_pipeline_loads_no_client() -> None:
    loaded = _modules_after("import pipeline")
    assert not {m for m in loaded if m.split(".")[0] in ("confluent_kafka", "psycopg", "fastavro")}
    assert "pipeline.domain" not in loaded


def test_run_does_not_import_the_contract_tooling() -> None:
    loaded = _modules_after(
        "import click\n"
        "import pipeline.cli.run\n"
        "from pipeline.cli import cli\n"
        "assert cli.get_command(click.Context(cli), 'run') is not None\n"
        "from pipeline.settings import load_settings\n"
        "from pipeline.domain import load_domain\n"
        "from pipeline.transformer.factory import build_transformer\n"
        "load_domain(load_settings().transformer.domain)\n"
    )
    assert "pipeline.transformer.factory" in loaded
    assert "pipeline.domains.shop.mappings" in loaded
    assert sorted(m for m in loaded if m.startswith("pipeline.contracts")) == []


def test_projections_and_upcasters_come_from_the_domain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.replay.projection import load_projections, load_upcasters

    files = dict(PACKAGE)
    files["__init__.py"] = """
        from pipeline import Domain, Projection, Upcasters
        from {pkg} import events
        from {pkg}.mappings import rules

        ups = Upcasters()
        ups.add("CrateFilled", 1, lambda record: record)
        crates = Projection(
            "crates",
            topics=["{pkg}.crate.events"],
            tables={{"n": "CREATE TABLE {{{{table}}}} (crate_id int PRIMARY KEY)"}},
        )
        domain = Domain("{pkg}", events=events, rules=rules, projections=[crates], upcasters=ups)
    """
    _package(tmp_path, "cratepkg3", files)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(load_projections(["cratepkg3"])) == ["crates"]
    assert load_upcasters(["cratepkg3"]).has_path("CrateFilled", 1, 2)
    # A projection's default decoder (rebuild, run_projection) has the modules' upcasters.
    from pipeline.replay.runner import projection_decoder
    from pipeline.settings import load_settings

    settings = load_settings(projections={"modules": ["cratepkg3"]})
    crates = load_projections(["cratepkg3"])["crates"]
    assert projection_decoder(settings, crates).upcasters.has_path("CrateFilled", 1, 2)
    shop = load_projections([EXAMPLE_DOMAIN])
    assert sorted(shop) == ["shop_order_timeline", "shop_orders_by_customer"]

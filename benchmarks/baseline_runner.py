"""The hot path of another revision of cdcflow, on held records: the child of ``hotpath --baseline``.

``python benchmarks/baseline_runner.py --tree DIR --held FILE --passes N --result FILE``
runs in an interpreter whose ``pipeline`` and ``benchmarks`` packages are those
of the revision checked out at ``DIR`` (a ``git worktree``). It does what that
revision's ``benchmarks/hotpath.py`` did — the bench settings, the
transformer built from them, ``Transformer.process`` over the records in
batches of the configured size, one warm pass — then times ``--passes``
passes in CPU time (``time.process_time``) as today's hot path does, and
writes records, events and the least CPU per record to ``--result`` as JSON.

It imports nothing of today's code but :mod:`benchmarks.held` (standard library
only, loaded by its path), and adapts to what the revision has: a
``build_transformer`` without ``instance``, a serializer without ``prepare``,
de-duplication without ``rollback`` (then the second pass drops every record as
a repeat, and the event count says so).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def _held_module() -> ModuleType:
    """:mod:`benchmarks.held` of the working tree, under a name the revision does not use."""
    name = "_cdcbench_held"
    spec = importlib.util.spec_from_file_location(name, HERE / "held.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the dataclass looks its module up while it is built
    spec.loader.exec_module(module)
    return module


def _transformer(tree: Path) -> Any:
    """The revision's transformer, built as its hot path benchmark built it."""
    import pipeline
    from benchmarks import common
    from pipeline.transformer import build_transformer

    if not Path(pipeline.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"pipeline was imported from {pipeline.__file__}, not from {tree}")
    if hasattr(common, "use_event_domain"):
        common.use_event_domain()
    settings = common.bench_settings(f"{common.NAME}-hotpath")
    if hasattr(common, "register_bench_subjects"):
        common.register_bench_subjects(settings)  # idempotent: the serializer looks the ids up
    if "instance" in inspect.signature(build_transformer).parameters:
        t = build_transformer(settings, instance="hotpath-baseline")
    else:
        t = build_transformer(settings)
    prepare = getattr(t.serializer, "prepare", None)
    if prepare is not None:
        prepare((et, t.topics[et]) for et in t.event_types)
    return t, settings.transformer.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tree", required=True, help="the revision's checkout")
    parser.add_argument("--held", required=True, help="the records (benchmarks.held.keep_held)")
    parser.add_argument("--count", type=int, default=None, help="the first N records of --held")
    parser.add_argument("--passes", type=int, default=3, help="timed passes; the least CPU counts")
    parser.add_argument("--result", required=True, help="where the JSON figures go")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    # The revision's packages, not this script's folder (whose modules are today's).
    sys.path[0] = str(tree)
    records = _held_module().read_held(Path(args.held), args.count)
    t, size = _transformer(tree)
    batches = [records[i : i + size] for i in range(0, len(records), size)]
    rollback = getattr(getattr(t, "dedup", None), "rollback", None)

    def run() -> int:
        events = 0
        for batch in batches:
            if rollback is not None:
                rollback()  # every pass sees the records as new
            result = t.process(batch)
            events += len(getattr(result, "out", result))
        return events

    try:
        run()  # warm: schemas parsed, registry ids looked up
        passes = []
        for _ in range(args.passes):
            started = time.process_time()
            events = run()
            passes.append(time.process_time() - started)
        cpu = min(passes)
    finally:
        close = getattr(t, "close", None)
        if close is not None:
            close()
    figures = {
        "records": len(records),
        "events": events,
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_passes": [round(p, 3) for p in passes],
        "records_per_cpu_second": round(len(records) / cpu) if cpu else None,
        "us_per_record": round(cpu / max(len(records), 1) * 1e6, 1),
        "dedup_rollback": rollback is not None,
    }
    Path(args.result).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

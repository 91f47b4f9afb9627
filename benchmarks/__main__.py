"""``python -m benchmarks [throughput] [hotpath] [record-format] [latency] [scaling] [replay] [options]``.

Each benchmark prints a table and writes ``benchmarks/results/<name>.json``.
They run on the local stack (``cdcflow stack up``) and create only names of
their own (``cdcbench*``). Figures depend on the machine: see docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmarks import hotpath, latency, record_format, replay, scaling, throughput
from benchmarks.common import BenchBusy, bench_lock, say
from pipeline.settings import load_settings

ALL = ["throughput", "hotpath", "record-format", "latency", "scaling", "replay"]
CLEAN = "clean"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "which",
        nargs="*",
        metavar="BENCHMARK",
        help=f"from {', '.join(ALL)}; default: all. '{CLEAN}' removes what they made",
    )
    parser.add_argument("--records", type=int, default=500_000, help="CDC records to pre-load")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench source, its connector and topics after the run (for --reuse); "
        "'python -m benchmarks clean' removes them",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse an earlier pre-load (and its Debezium capture figure) when there is one",
    )
    parser.add_argument(
        "--sample", type=int, default=50_000, help="hotpath: records held in memory"
    )
    parser.add_argument(
        "--hotpath-topics",
        default=None,
        metavar="REGEX",
        help="hotpath: read these CDC topics instead of the bench pre-load (e.g. '^shop\\.public\\.'); "
        "the bench source is then left as it is",
    )
    parser.add_argument(
        "--sample-file",
        default=None,
        metavar="PATH",
        help="hotpath: keep the sample in this file, and read it from there on the next runs",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="hotpath: also run the same records through revision REV's transformer (a temporary "
        "git worktree, removed afterwards) and report ratio_to_baseline = REV's CPU per record "
        "over the working tree's (default: none)",
    )
    parser.add_argument(
        "--format-records",
        type=int,
        default=20_000,
        help="record-format: CDC records of the bench pre-load to size and parse",
    )
    parser.add_argument(
        "--rates", default="500,2000", help="latency: business operations/s, comma-separated"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="latency: seconds per rate")
    parser.add_argument(
        "--debezium-poll-ms",
        type=int,
        default=None,
        help="latency: run with the bench connector's poll.interval.ms set to this (default: as shipped)",
    )
    parser.add_argument(
        "--latency-modes",
        default="transformer,overlapped",
        help="latency: transformer (as configured: commits one after the other) and/or "
        "overlapped (transformer.overlap_commit=true), each measured at every rate",
    )
    parser.add_argument(
        "--processes", default="1,2,4", help="scaling: transformer processes, comma-separated"
    )
    parser.add_argument(
        "--replay-events", type=int, default=1_000_000, help="replay: events in its topic"
    )
    args = parser.parse_args()
    which = args.which or ALL
    unknown = set(which) - {*ALL, CLEAN}
    if unknown:
        parser.error(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; from {', '.join(ALL)}, {CLEAN}"
        )
    logging.basicConfig(level=logging.WARNING)
    try:
        with bench_lock(load_settings()):
            _run(args, which)
    except BenchBusy as exc:
        parser.exit(2, f"python -m benchmarks: {exc}\n")


def _run(args: argparse.Namespace, which: list[str]) -> None:
    if "throughput" in which:
        throughput.main(args.records, reuse=args.reuse)
    if "hotpath" in which:
        sample_file = Path(args.sample_file) if args.sample_file else None
        hotpath.main(args.sample, args.hotpath_topics, sample_file, args.baseline)
    if "record-format" in which:
        record_format.run(args.format_records)
    if "latency" in which:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        modes = tuple(m.strip() for m in args.latency_modes.split(",") if m.strip())
        latency.main(rates, args.duration, args.debezium_poll_ms, modes)
    if "scaling" in which:
        scaling.main([int(n) for n in args.processes.split(",") if n.strip()])
    if "replay" in which:
        replay.main(args.replay_events)
    bench = {"throughput", "hotpath", "record-format", "latency", "scaling"} & set(which)
    if args.hotpath_topics is not None:
        bench.discard("hotpath")  # it read other topics: the bench source is not its to remove
    if CLEAN in which or (bench and not args.keep):
        # The bench connector's replication slot would retain WAL for the whole
        # server once nothing reads it: the source goes when the run is done.
        from benchmarks.common import NAME, bench_settings
        from benchmarks.source import BenchSource

        say("removing the bench source (connector, slot, database), topics and subjects")
        BenchSource(bench_settings(f"{NAME}-probe")).remove_all()


if __name__ == "__main__":
    main()

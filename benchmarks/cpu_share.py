"""Who used the machine's CPU during a measurement: the whole machine, and each part of the pipeline.

A latency figure on a small machine says little without it: when PostgreSQL,
the broker, Connect, the workload and the transformer together ask for more
CPU than the cores have, every record waits for a core, and that wait is in
every percentile. :class:`CpuShare` reads ``/proc`` at the start and the end
of a window:

- the machine: busy time (everything but idle and iowait) over the cores'
  time in the window (``/proc/stat``), so 100% means every core was busy
  all the time;
- each process's user + system CPU (``/proc/<pid>/stat``), summed by part
  (PostgreSQL, Kafka broker, Kafka Connect, schema registry, Prometheus, the
  transformer, the workload, other). A process that started during the
  window counts from zero; one that ended during it is not seen (the
  pipeline's processes live through a run).

Linux only; elsewhere :meth:`CpuShare.stop` returns None.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# A process's part of the pipeline, by the first of these its command line contains.
PARTS: tuple[tuple[str, str], ...] = (
    ("benchmarks.worker drain", "transformer"),
    ("cdcflow run", "transformer"),
    ("benchmarks.worker workload", "workload"),
    ("ConnectDistributed", "kafka connect"),
    ("kafka.Kafka", "kafka broker"),
    ("quarkus", "schema registry"),
    ("apicurio", "schema registry"),
    ("prometheus", "prometheus"),
    ("postgres", "postgresql"),
)


def part_of(cmdline: str) -> str:
    """The pipeline part a command line belongs to (``other`` when none)."""
    for needle, part in PARTS:
        if needle in cmdline:
            return part
    return "other"


def _machine() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot."""
    try:
        first = (PROC / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (part, user + system jiffies) of every process readable now."""
    out: dict[int, tuple[str, int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        jiffies = int(fields[11]) + int(fields[12])  # utime, stime
        out[int(entry.name)] = (part_of(cmdline or stat), jiffies)
    return out


class CpuShare:
    """Start it, run the measurement, stop it: the machine's and each part's CPU in between."""

    def __init__(self) -> None:
        self._machine = _machine()
        self._procs = _processes() if self._machine is not None else {}

    def stop(self) -> dict[str, Any] | None:
        """``machine_busy_pct``, ``cores``, ``cpu_seconds`` by part; None where /proc is not there."""
        end = _machine()
        if self._machine is None or end is None:
            return None
        busy, total = end[0] - self._machine[0], end[1] - self._machine[1]
        by_part: dict[str, float] = defaultdict(float)
        for pid, (part, jiffies) in _processes().items():
            before = self._procs.get(pid)
            start = before[1] if before is not None and before[0] == part else 0
            by_part[part] += max(jiffies - start, 0) / TICK
        cores = os.cpu_count() or 1
        return {
            "machine_busy_pct": round(100 * busy / total, 1) if total else 0.0,
            "cores": cores,
            "window_s": round(total / TICK / cores, 1),
            "cpu_seconds": {
                k: round(v, 1) for k, v in sorted(by_part.items(), key=lambda kv: -kv[1])
            },
        }

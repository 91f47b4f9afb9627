"""cdcflow's benchmarks: throughput, latency, scaling, memory and replay on the local stack.

Run them all with ``make bench`` (``.venv/bin/python -m benchmarks``); see
``docs/BENCHMARKS.md`` for the latest figures and what each one measures.
"""

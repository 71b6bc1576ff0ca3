"""The benchmarks' rows as data, for bench/chart.py.

Every side-by-side row a benchmark prints is also appended, as one JSON
line, to the file named by $CASYNCIO_BENCH_RESULTS (bench/run.sh sets it;
unset, nothing is written). A row holds each loop's cost per operation,
lower is better, so one chart can put CPU time, instructions and rates
side by side as ratios to uvloop.
"""
import json
import os
import sys


def record(section, row, unit, costs, floor=None):
    """Appends one row: costs maps "casyncio", "asyncio" and "uvloop" to
    the cost of one operation in unit; floor is the C floor's (the least
    any loop can spend), where the benchmark has one."""
    path = os.environ.get("CASYNCIO_BENCH_RESULTS")
    if not path:
        return
    entry = {"section": section, "row": row, "unit": unit,
             "costs": costs, "floor": floor}
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def progress(section, text):
    """One line on stderr saying what a long run is measuring now."""
    print(f"[{section}] {text}", file=sys.stderr, flush=True)

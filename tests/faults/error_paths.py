"""Which of src/ext's error exits a run reached: reads the counters of a
--coverage build (gcov's JSON) and reports, per C file and per function,
how many error exits ran at least once.

An error exit is a line that leaves a function on failure: `return NULL;`,
`return -1;`, `goto fail;`, `goto error;`, or a `goto done;` whose line or
the line before tests `== NULL` or `< 0` (a heuristic over the code's own
idioms; a reached exit is one whose line ran at least once).

    git clone . /tmp/cov && cd /tmp/cov
    CFLAGS=--coverage LDFLAGS=--coverage python setup.py build_ext --inplace
    cd tests && PYTHONPATH=.. python -m faults.alloc_sweep --loop casyncio \\
        --stride 8 --gcov
    python -m faults.error_paths ../build/temp.*/src/ext [--functions 20]
(run from tests/, in the clone: the counters add up over every run since
the build, so delete build/**/*.gcda to start again.)
"""
import argparse
import collections
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile

ERROR_EXIT = re.compile(r"\b(return NULL;|return -1;|goto (fail|error);)")
GOTO_DONE = re.compile(r"\bgoto done;")
FAILURE_TEST = re.compile(r"== NULL|< 0")


def error_exit_lines(source_lines):
    """Line numbers (1-based) of the error exits in a C file."""
    found = set()
    for number, text in enumerate(source_lines, 1):
        if ERROR_EXIT.search(text):
            found.add(number)
        elif GOTO_DONE.search(text):
            before = source_lines[number - 2] if number > 1 else ""
            if FAILURE_TEST.search(text) or FAILURE_TEST.search(before):
                found.add(number)
    return found


def gcov_json(object_dir, source_root):
    """gcov's per-file JSON for every .gcda in object_dir."""
    object_dir, source_root = map(os.path.abspath, (object_dir, source_root))
    with tempfile.TemporaryDirectory() as out:
        for data in sorted(glob.glob(os.path.join(object_dir, "*.gcda"))):
            source = os.path.join(source_root, os.path.basename(data)[:-5]
                                  + ".c")
            subprocess.run(["gcov", "--json-format", "-o", object_dir,
                            source], cwd=out, check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        for name in sorted(os.listdir(out)):
            with gzip.open(os.path.join(out, name)) as f:
                yield from json.load(f)["files"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("object_dir", help="build/temp.*/src/ext")
    parser.add_argument("--source", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "src", "ext"))
    parser.add_argument("--functions", type=int, default=15,
                        help="list this many functions with the most "
                             "unreached error exits")
    args = parser.parse_args()
    per_function = collections.Counter()
    total_exits = total_reached = 0
    print(f"{'file':<26}{'functions run':>14}{'error exits':>13}"
          f"{'reached':>9}{'share':>8}")
    for record in gcov_json(args.object_dir, args.source):
        name = os.path.basename(record["file"])
        path = os.path.join(args.source, name)
        if not name.endswith(".c") or not os.path.exists(path):
            continue  # a header's inline functions: counted where used
        with open(path) as f:
            exits = error_exit_lines(f.read().splitlines())
        counts = {line["line_number"]: line["count"]
                  for line in record["lines"]}
        owner = {line["line_number"]: line["function_name"]
                 for line in record["lines"]}
        reached = {n for n in exits if counts.get(n, 0) > 0}
        for n in exits - reached:
            per_function[name, owner.get(n, "?")] += 1
        functions = record["functions"]
        run = sum(1 for f in functions if f["execution_count"] > 0)
        total_exits += len(exits)
        total_reached += len(reached)
        share = len(reached) / len(exits) if exits else 1.0
        print(f"{name:<26}{run:>7}/{len(functions):<6}{len(exits):>13}"
              f"{len(reached):>9}{share:>8.0%}")
    if not total_exits:
        sys.exit("no counters found: was the build made with --coverage "
                 "and run?")
    print(f"{'total':<26}{'':>14}{total_exits:>13}{total_reached:>9}"
          f"{total_reached / total_exits:>8.0%}")
    print("\nfunctions with the most unreached error exits:")
    for (name, function), missed in per_function.most_common(args.functions):
        print(f"  {missed:>3}  {name}: {function}")


if __name__ == "__main__":
    main()

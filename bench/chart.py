"""Draws the rows bench/results.py recorded as one PNG: per row, the cost
of casyncio, asyncio and uvloop as a ratio to uvloop's (so uvloop is 1;
lower is better), with the C floor's ratio marked where the row has one.
Rows without a uvloop figure are left out.

    python bench/chart.py RESULTS.jsonl OUT.png --title "..."
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")  # no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

LOOPS = ("casyncio", "asyncio", "uvloop")
COLORS = {"casyncio": "#1f77b4", "asyncio": "#aaaaaa", "uvloop": "#ff7f0e"}


def read_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def draw(rows, out, title):
    height = 0.26
    fig, ax = plt.subplots(figsize=(10, 0.62 * len(rows) + 1.6))
    labels = []
    for y, row in enumerate(rows):
        base = row["costs"]["uvloop"]
        for i, kind in enumerate(LOOPS):
            ratio = row["costs"][kind] / base
            ax.barh(y + (i - 1) * height, ratio, height, color=COLORS[kind],
                    label=kind if y == 0 else None)
            ax.text(ratio, y + (i - 1) * height, f" {ratio:.2f}",
                    va="center", fontsize=7)
        if row.get("floor"):
            ax.plot([row["floor"] / base] * 2,
                    [y - 1.6 * height, y + 1.6 * height], color="black",
                    linewidth=2, label="C floor" if "C floor" not in
                    ax.get_legend_handles_labels()[1] else None)
        labels.append(f"{row['section']}: {row['row']}")
    ax.axvline(1, color="#ff7f0e", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("cost per operation (time, CPU time or instructions) "
                  "relative to uvloop's; log scale, lower is better")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("out")
    parser.add_argument("--title", default="casyncio vs asyncio vs uvloop")
    args = parser.parse_args()
    # Rows without uvloop (the subinterpreter rows: it does not load
    # there) have nothing to be drawn relative to.
    rows = [row for row in read_rows(args.results) if "uvloop" in row["costs"]]
    draw(rows, args.out, args.title)


if __name__ == "__main__":
    main()

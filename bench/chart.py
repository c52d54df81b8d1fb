"""Draws docs/images/performance.png from the suite's medians (bench/report.py writes the JSON).

    bench/.venvs/plot/bin/python bench/chart.py results.json performance.png

Runs in its own environment (matplotlib), so it imports nothing from the bench.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render straight to the file
import matplotlib.pyplot as plt

BASE_COLOUR = "#d9480f"
OTHER_COLOUR = "#868e96"
FAILED = "failed"


def panel(ax: Any, base: str, figure: dict[str, Any]) -> None:
    # Only the systems the figure is measured for; None among them is a system that failed.
    systems, values = figure["systems"], figure["values"]
    shown = [v if v is not None else 0.0 for v in values]
    colours = [BASE_COLOUR if s == base else OTHER_COLOUR for s in systems]
    ax.barh(range(len(systems)), shown, color=colours)
    ax.set_yticks(range(len(systems)), systems, fontsize=8)
    ax.invert_yaxis()  # the first system (Sidequest) on top
    better = "higher" if figure["higher_is_better"] else "lower"
    ax.set_title(f"{figure['label']} ({figure['unit']}, {better} is better)", fontsize=9)
    if figure["unit"] == "ms":
        ax.set_xscale("log")  # latencies span milliseconds to seconds
    ax.tick_params(axis="x", labelsize=7)
    for i, value in enumerate(values):
        if value is None:  # at the axis's left edge: x = 0 is off a log scale
            ax.text(0, i, f" {FAILED}", va="center", fontsize=7,
                    transform=ax.get_yaxis_transform())
        else:
            ax.text(value, i, f" {_fmt(value, figure['unit'])}", va="center", fontsize=7)
    ax.margins(x=0.25)


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.1f}" if unit == "ms" else f"{value:,.0f}"


def draw(data: dict[str, Any], out: str) -> None:
    figures = data["figures"]
    columns = 2
    rows = (len(figures) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(11, 2.2 * rows + 0.6))
    flat = list(axes.flat)
    for ax, figure in zip(flat, figures, strict=False):
        panel(ax, data["base"], figure)
    for ax in flat[len(figures):]:
        ax.axis("off")
    fig.suptitle("One worker process (two in \"drain, 2 processes\"), 10 jobs at once each;"
                 " medians (bench/suite.py)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    source, out = argv
    with open(source) as handle:
        draw(json.load(handle), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Runs bench/render_bench.py in light mode and prints its table in the test report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.mark.bench
def test_render_benchmark_prints_its_table(summary):
    import render_bench

    lines = render_bench.run(light=True, log=lambda _: None)
    summary.extend(lines)
    rows = {line.split("|")[1].strip().split()[0]: [c.strip() for c in line.split("|")[1:-1]] for line in lines
            if line.startswith("| (")}
    assert sorted(rows) == ["(a)", "(b)", "(b0)", "(c)", "(d)"], lines
    seconds = {case: float(row[3]) for case, row in rows.items()}  # CPU seconds: steadier than wall
    # One light round is too noisy for the 2x/4x limits (full mode holds to them), but the copy-time
    # checks must stay far cheaper than the full linters.
    assert seconds["(a)"] < seconds["(b)"] < seconds["(c)"] < seconds["(d)"], lines
    assert seconds["(b)"] < seconds["(b0)"], lines  # the bytecode cache pays off from the second copy

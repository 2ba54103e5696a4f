"""Runs bench/stack_bench.py in light mode and prints its tables in the test report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.mark.bench
def test_stack_benchmark_prints_its_tables(docker_engine, summary):
    import stack_bench

    lines = stack_bench.run(light=True, runs=1, log=lambda _: None)
    summary.extend(lines)
    assert any(line.startswith("| staging") for line in lines) and any(line.startswith("| prod") for line in lines)
    memory = [line for line in lines if line.count("|") == 6 and line.split("|")[2].strip() in
              {"edge", "frontend", "backend", "mysql", "redis"}]
    assert len(memory) == 10  # five services in each of two environments

"""Runs bench/deploy_bench.py in light mode and prints its tables in the test report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.mark.bench
def test_deploy_benchmark_prints_its_tables(docker_engine, summary):
    import deploy_bench

    lines = deploy_bench.run(light=True, runs=1, log=lambda _: None)
    summary.extend(lines)
    script = next(line for line in lines if line.startswith("| scripts/deploy.sh"))
    assert script.split("|")[3].strip() == "0"  # the generated script drops no request

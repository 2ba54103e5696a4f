"""The stack benchmark in light mode, from the live tests' shared stacks, printed in the test report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.mark.bench
def test_stack_benchmark_prints_its_tables(staging_stack, prod_stack, base_images, summary):
    import stack_bench

    kind = "official" if base_images.get("mysql_image") == "mysql:8.0" else "stand-in"
    lines = stack_bench.report([staging_stack, prod_stack], kind, base_images)
    summary.extend(lines)
    assert any(line.startswith("| staging") for line in lines) and any(line.startswith("| prod") for line in lines)
    memory = [line for line in lines if line.count("|") == 6 and line.split("|")[2].strip() in
              {"edge", "frontend", "backend", "mysql", "redis"}]
    assert len(memory) == 10  # five services in each of two environments

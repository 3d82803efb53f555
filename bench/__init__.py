"""Benchmarks (issue 7): ``python -m bench.run [--quick] [--json PATH]``. Every figure is a
count or a ratio against a baseline measured in the same run; nothing here asserts timings."""

"""Zynk's benchmarks: load generators run against a real `zynk up` (see bench/README.md)."""

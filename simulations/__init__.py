"""The ``fedlite`` command line: scenarios on Flower's simulation engine, benchmarks, plots."""

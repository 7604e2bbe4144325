"""Benchmarks for pieces_service: `python -m bench.run` (or `make bench`). Never part of
`make test`. See BENCHMARKS.md for what is measured and how."""

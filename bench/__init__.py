"""Benchmarks that print figures (not timed tests). Run each from the repository root with
`python -m bench.<name>`; see bench/README.md."""

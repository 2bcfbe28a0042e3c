"""Benchmarks for shadowsync against its peers, run in one process and reported as ratios.

Run ``python -m benchmarks`` for the full suite or ``python -m benchmarks --smoke`` for a quick
run that still checks every comparison for agreement. See ``benchmarks/README.md``.
"""

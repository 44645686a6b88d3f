"""Benchmarks: each module is a script that prints figures (``python bench/NAME.py``).

A package so that its modules have names of their own (``bench.server`` is not
the tests' ``server`` package) and share :mod:`bench.common`.
"""

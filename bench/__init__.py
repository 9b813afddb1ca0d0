"""Benchmarks for simfarm: `python -m bench.run [--quick|--full] [--only a,b,...]`.

Each speed target of the design has its own module; `run` drives them, prints
one table and writes docs/BENCHMARKS.md. Everything runs on loopback, every loop is bounded in
count and time, and every child process is killed when its measure ends.
"""

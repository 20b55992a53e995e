#!/usr/bin/env python3
"""Prints the medians criterion saved (target/criterion/**/new/estimates.json) as a table,
with the ratio of each portcullis figure to the baseline measured beside it in the same run.

Usage: scripts/bench-table.py GROUP [GROUP...]   (e.g. verify layer policy)
"""
import json
import os
import sys

root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def median(path):
    with open(os.path.join(path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


for group in sys.argv[1:]:
    base = os.path.join(root, group)
    rows = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if os.path.basename(dirpath) == "new" and "estimates.json" in filenames:
            bench = os.path.dirname(dirpath)
            name = os.path.relpath(bench, base)
            rows[name] = median(bench)
    print(f"{group}:")
    for name in sorted(rows):
        print(f"  {name:55} {fmt(rows[name]):>12}")

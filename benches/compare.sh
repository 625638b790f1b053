#!/usr/bin/env bash
# Runs the two-thread throughput benchmark and prints a Markdown table:
# one row per message size, one column per ring (throughput, and the ratio to
# rtrb's throughput for the same size).
#
# Usage: benches/compare.sh [--no-run] [criterion args...]
#        benches/compare.sh --interleaved [--rounds N] [--mib M]
#   --no-run        only print the table from the last run's results
#   criterion args  passed to the bench binary, e.g. a filter: throughput/64B
#   --interleaved   run the `interleaved` bench instead: every ring once per
#                   round, ratios to rtrb taken within a round, medians over
#                   rounds. Use it on a busy machine, where criterion's
#                   one-benchmark-after-another numbers drift with the load.
#
# Results are criterion's, read from <criterion home>/throughput_*/<ring>/new/
# (benchmark.json for the bytes per iteration, estimates.json for the mean
# time per iteration). The criterion home is $CRITERION_HOME if set, else
# $CARGO_TARGET_DIR/criterion, else the workspace's target dir/criterion.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${1:-}" == "--interleaved" ]]; then
    shift
    cd "$root"
    # The bench prints the table on stdout; cargo's progress is on stderr.
    exec cargo bench -p srb-benches --bench interleaved -- "$@"
fi

run=1
if [[ "${1:-}" == "--no-run" ]]; then
    run=0
    shift
fi

# Resolve everything to absolute paths *before* cd: cargo runs the bench
# binary from the package directory, so a relative CARGO_TARGET_DIR would
# otherwise mean two different places to cargo and to criterion.
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
    export CARGO_TARGET_DIR
fi
if [[ -n "${CRITERION_HOME:-}" ]]; then
    CRITERION_HOME="$(realpath -m "$CRITERION_HOME")"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    CRITERION_HOME="$CARGO_TARGET_DIR/criterion"
else
    CRITERION_HOME="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/criterion"
fi
export CRITERION_HOME

cd "$root"
if [[ "$run" == 1 ]]; then
    # --noplot: criterion's SVG plots take ~10 s per benchmark here, longer
    # than the measurement; run `cargo bench` directly to get them.
    # Criterion's progress goes to stderr and its report to stdout; keep both
    # off stdout so that stdout is just the table.
    cargo bench -p srb-benches --bench throughput -- --noplot "$@" >&2
fi

python3 - "$CRITERION_HOME" <<'PY'
import json
import os
import sys

home = sys.argv[1]
rings = ["srb", "pa", "rtrb", "heapless"]
sizes = ["16B", "64B", "1KiB"]

results = {}  # (size, ring) -> bytes per second
for entry in sorted(os.listdir(home)) if os.path.isdir(home) else []:
    group_dir = os.path.join(home, entry)
    if not os.path.isdir(group_dir):
        continue
    for bench in os.listdir(group_dir):
        new = os.path.join(group_dir, bench, "new")
        try:
            with open(os.path.join(new, "benchmark.json")) as f:
                meta = json.load(f)
            with open(os.path.join(new, "estimates.json")) as f:
                est = json.load(f)
        except (OSError, ValueError):
            continue
        group = meta.get("group_id", "")
        if not group.startswith("throughput/"):
            continue
        size = group.split("/", 1)[1]
        ring = meta.get("function_id")
        per_iter = (meta.get("throughput") or {}).get("Bytes")
        ns = est["mean"]["point_estimate"]
        if ring and per_iter and ns > 0:
            results[(size, ring)] = per_iter / (ns * 1e-9)

if not results:
    sys.exit(f"no throughput results under {home}; run without --no-run first")

def fmt(bps):
    gib = bps / 2**30
    return f"{gib:.2f} GiB/s" if gib >= 1 else f"{bps / 2**20:.0f} MiB/s"

print("| message | " + " | ".join(rings) + " |")
print("|---|" + "---:|" * len(rings))
for size in sizes + sorted({s for s, _ in results} - set(sizes)):
    if not any((size, r) in results for r in rings):
        continue
    base = results.get((size, "rtrb"))
    cells = []
    for r in rings:
        v = results.get((size, r))
        if v is None:
            cells.append("–")
        elif base:
            cells.append(f"{fmt(v)} ({v / base:.2f}×)")
        else:
            cells.append(fmt(v))
    print(f"| {size} | " + " | ".join(cells) + " |")
print()
print("Mean of criterion's samples; ratio in parentheses is vs rtrb (higher is faster).")
PY

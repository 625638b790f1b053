#!/usr/bin/env bash
# Cross-process round trip (32 bytes) and one-way throughput of the srb
# channel against eventfd, unix socket, pipe and a shared cache line, pinned
# to one CPU and to two; prints a Markdown table (also saved to
# target/xproc.md), writes benches/xproc.svg and benches/xproc.csv (the plot
# can be redrawn from the CSV: xproc --from-csv benches/xproc.csv --svg F).
# Needs two CPUs. About a minute on an idle 2-vCPU machine.
# Usage: benches/xproc.sh [--iters N] [--rounds R] [--spin-us U] [--quick] [--only CASE]
# (cargo runs the bench binary in benches/, hence the absolute paths.)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

cargo bench -p srb-benches --bench xproc --no-run
cargo bench -p srb-benches --bench xproc -- \
  --svg "$PWD/benches/xproc.svg" --csv "$PWD/benches/xproc.csv" "$@" | tee target/xproc.md

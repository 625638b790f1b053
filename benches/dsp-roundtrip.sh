#!/usr/bin/env bash
# Per-period cost of the host <-> dsp-sim round trip (srb channel + eventfd
# wake-ups on both sides, DSP in bypass) at 64, 256 and 1024 frames of
# 48 kHz stereo, as median / p99 in µs and as a share of the period.
# Prints a Markdown table on stdout (cargo's progress goes to stderr).
#
# Usage: benches/dsp-roundtrip.sh [--periods N] [--frames 64,256,1024]
#   --periods N   periods measured per size (default: about 3 s of audio)
#   --frames L    comma-separated period sizes
#
# Honours CARGO_TARGET_DIR. Builds the release dsp-sim binary first and
# hands its path to the bench in SRB_DSP_SIM.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")"
export CARGO_TARGET_DIR="$target"

cargo build --release -p srbd --bin dsp-sim >&2
export SRB_DSP_SIM="$target/release/dsp-sim"
exec cargo bench -p srb-benches --bench dsp_roundtrip -- "$@"

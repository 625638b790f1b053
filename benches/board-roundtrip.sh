#!/usr/bin/env bash
# Per-period cost of the host <-> board DSP peer round trip (the Cortex-M4F
# firmware under QEMU mps2-an386, its PSRAM shared as a file, the host
# polling the ring) at 64, 256 and 1024 frames of 48 kHz stereo, with the
# firmware's own processing time per period, as µs and as a share of the
# period; then the same sizes through dsp-sim (benches/dsp-roundtrip.sh) for
# comparison. Prints Markdown tables on stdout.
#
# Usage: benches/board-roundtrip.sh [--periods N] [--frames 64,256,1024]
#
# Needs the board toolchain and qemu-system-arm (scripts/test-boards.sh
# installs them); scripts/board-peer.sh builds the firmware.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")"
export CARGO_TARGET_DIR="$target"

SRB_BOARD_ELF="$(bash scripts/board-peer.sh)"
export SRB_BOARD_ELF
cargo bench -p srb-benches --bench board_roundtrip -- "$@"
echo
bash benches/dsp-roundtrip.sh "$@"

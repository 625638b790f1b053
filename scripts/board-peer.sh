#!/usr/bin/env bash
# Builds the board DSP peer firmware (boards/mps2-an386, bin
# srb-board-dsp-peer) with Debian's Rust and build-std, exactly as
# scripts/test-boards.sh builds the boards, and prints the ELF's path.
# `srbd --dsp board:ELF` runs it under qemu-system-arm.
#
# Needs the board toolchain (rustc-web, cargo-web, rust-web-src, lld-22) and
# qemu-system-arm: `bash scripts/test-boards.sh` installs them once. Fails
# with a message naming what is missing; never installs anything itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
missing=()
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || missing+=("Debian's rustc/cargo (rustc-web cargo-web)")
[ -d /usr/lib/rustlib/src/rust/library ] || missing+=("Rust library source (rust-web-src)")
command -v ld.lld-22 >/dev/null || missing+=("ld.lld-22 (lld-22)")
command -v qemu-system-arm >/dev/null || missing+=("qemu-system-arm")
if [ ${#missing[@]} -gt 0 ]; then
  echo "board-peer: missing: ${missing[*]}; run 'bash scripts/test-boards.sh' once (it installs them)" >&2
  exit 1
fi
LOG=$ROOT/boards/target/logs/dsp-peer.build
mkdir -p "$(dirname "$LOG")"
if ! (cd "$ROOT/boards/mps2-an386" &&
  env -u RUSTFLAGS -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTC_WRAPPER \
    -u CARGO_MAKEFLAGS -u CARGO_PRIMARY_PACKAGE -u CARGO_MANIFEST_DIR -u CARGO_ENCODED_RUSTFLAGS -u RUSTUP_TOOLCHAIN \
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --quiet \
    --bin srb-board-dsp-peer) >"$LOG" 2>&1; then
  tail -40 "$LOG" >&2
  echo "board-peer: build failed (log: $LOG)" >&2
  exit 1
fi
echo "$ROOT/boards/mps2-an386/target/thumbv7em-none-eabihf/release/srb-board-dsp-peer"

#!/usr/bin/env bash
# Builds srb-core into a freestanding x86_64 Linux executable (no std, no libc,
# own _start) and runs it: exit 0 means both layouts moved bytes correctly.
set -euo pipefail
cd "$(dirname "$0")/../nostd-check"
# Also check the library alone has no std dependency for a bare-metal-like
# build: `cargo build -p srb-core` with `--no-default-features` is covered by
# the executable below, which would fail to link if core pulled in std.
# An explicit --target keeps these link flags away from build scripts.
cargo build --release --quiet --target x86_64-unknown-linux-gnu
bin=target/x86_64-unknown-linux-gnu/release/srb-nostd-check
if nm -u "$bin" 2>/dev/null | grep -q .; then
  echo "nostd-check: unresolved symbols:" >&2
  nm -u "$bin" >&2
  exit 1
fi
"$bin"

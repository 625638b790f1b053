#!/usr/bin/env bash
# Heavy transport tests of srb-linux, in release mode: two processes exchange
# 10^6 checksummed messages per configuration (both layouts, both signal
# kinds, small rings so both sides block), plus the hostile-import and
# vanished-peer tests. The debug `cargo test --workspace` run covers the same
# tests with 10^4 messages. Then PulseAudio's own srbchannel (libpulsecommon)
# against srb-core's pa layout: 4 runs x 2 directions x 150 000 messages.
# Usage: scripts/test-linux.sh   (SRB_EXCHANGE_MESSAGES=N to change the count)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

echo "==> srb-linux transport tests (release)"
cargo test -p srb-linux --release --test exchange --test hostile --test peer_gone \
  -- --nocapture --test-threads=1

# The state page: a reader process takes 2 x 10^6 snapshots (one seqlock
# attempt each) while this process publishes continuously; every one must
# verify (checksum and every field); plus the seal, hostile-page, control
# socket and srb-top tests.
echo "==> srb-linux state page (release, 2 x 10^6 cross-process snapshots)"
cargo test -p srb-linux --release --test state_page -- --nocapture

echo "==> PulseAudio's srbchannel as the peer (release, 1.2 x 10^6 messages)"
cargo test -p srb-linux --release --test pa_interop -- --nocapture

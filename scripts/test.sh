#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine; installs what it needs.
# Usage: scripts/test.sh            (everything)
#        SRB_SKIP_LOOM=1 scripts/test.sh   (skip the loom models, for quick local runs)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
export CARGO_INCREMENTAL=0

step "toolchain"
rustup component list --installed 2>/dev/null | grep -qE '^(rustfmt|clippy)' || true
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
cargo --version

# Debian clients for the srbd end-to-end tests, which `cargo test --workspace`
# runs (host-linux/srbd/tests/srbd_e2e.rs), and libpulse's libpulsecommon, whose
# srbchannel host-linux/tests/pa_interop.rs drives. The board suite installs its own.
step "packages the tests need"
if ! command -v pactl >/dev/null 2>&1 || ! command -v gst-launch-1.0 >/dev/null 2>&1 \
  || ! ls /usr/lib/*/pulseaudio/libpulsecommon-*.so >/dev/null 2>&1 \
  || ! dpkg -s libasound2-dev libasound2-plugins pulseaudio >/dev/null 2>&1; then
  apt-get update -qq
  # libasound2-dev: srbd's ALSA output/input (alsa-sys links alsa-lib);
  # libasound2-plugins and pulseaudio: the ALSA device tests (alsa_device.rs).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pulseaudio-utils libpulse0 libpulse-dev \
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-pulseaudio \
    libasound2-dev libasound2-plugins pulseaudio
fi
pactl --version | head -1

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path nostd-check/Cargo.toml -- --check

step "no import cycles between modules (scripts/module-cycles.py)"
python3 scripts/module-cycles.py

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

# Before the workspace tests: it installs the board toolchain and QEMU, which
# srbd's board-peer suite (host-linux/srbd/tests/srbd_board_peer.rs) needs to
# build and run the firmware.
step "boards: srb-core and the DSP kernels on Cortex-M under QEMU (installs Debian's toolchain and QEMU)"
bash scripts/test-boards.sh

step "cargo test --workspace (unit, property, integration, doc)"
cargo test --workspace

step "srb-core with its defmt feature"
cargo check -p srb-core --features defmt

step "srb-core builds and runs without std or libc (freestanding executable)"
bash scripts/nostd-check.sh

step "srb-linux: processes exchanging 10^6 messages, hostile imports (release)"
bash scripts/test-linux.sh

step "fuzz: every cargo-fuzz target of host-linux/fuzz for 10 s (installs cargo-fuzz)"
bash scripts/fuzz.sh 10

if [ "${SRB_SKIP_LOOM:-0}" != 1 ]; then
  # Own target dir: RUSTFLAGS=--cfg loom would otherwise invalidate the
  # normal build. Warnings are errors here too.
  step "loom models (release, LOOM_MAX_PREEMPTIONS=2)"
  RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=2 \
    cargo test -p srb-loom-tests --release --target-dir target/loom
  # Deeper: bound 3 is needed to catch a missing fence in the srb wake-up
  # handshake (checked by mutation); 5 costs seconds. SRB_LOOM_EXHAUSTIVE=1
  # explores every interleaving (about 7 minutes on 2 cores).
  step "loom models (release, LOOM_MAX_PREEMPTIONS=5)"
  RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=5 \
    cargo test -p srb-loom-tests --release --target-dir target/loom
  # The mutation check: with the rings' hand-over orderings weakened to
  # Relaxed (srb-core's loom-mutant feature), loom must report the payload
  # race; the mutant_* models are #[should_panic(expected = "Causality
  # violation")], so this step fails if the mutation goes unnoticed.
  step "loom mutation check (Relaxed rings must fail)"
  RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=2 \
    cargo test -p srb-loom-tests --release --target-dir target/loom --features mutant -- mutant_
  # The wake mutation check: with the srb reader never waking its writer
  # (srb-core's loom-mutant-wake feature), every model of a writer waiting
  # for space must deadlock; mutant_wake_space_waits_deadlock runs each in a
  # child process and fails if one does not.
  step "loom wake mutation check (a reader that skips the space wake-up must deadlock)"
  RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=2 \
    cargo test -p srb-loom-tests --release --target-dir target/loom --features mutant-wake -- mutant_wake_
  # The seqlock mutation checks: with the writer's closing store of the
  # even sequence Relaxed, or the reader's fence before its second sequence
  # load dropped, loom must find a torn copy returned as valid; the
  # mutant_seqlock_* models are #[should_panic(expected = "torn copy")].
  step "loom seqlock mutation checks (a Relaxed publish or a missing reader fence must tear)"
  for m in publish fence; do
    RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=2 \
      cargo test -p srb-loom-tests --release --target-dir target/loom --test seqlock \
      --features "mutant-seqlock-$m" -- "mutant_seqlock_$m"
  done
fi

step "all tests passed"

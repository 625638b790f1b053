#!/usr/bin/env bash
# Board tests: build each firmware in boards/ for its Cortex-M target with
# Debian's Rust (build-std), run it under QEMU, decode its defmt log and check
# the exit code and the expected lines. Then prove the harness can fail: the
# mps2-an386 firmware built with `corrupt-sample` must exit 1.
#
# Installs what it needs on a fresh Debian 12 machine (as root): the Debian
# packages below (skipped when present) and defmt-print (cached under
# ${SRB_CACHE:-$HOME/.cache/srb}/defmt-print). See boards/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CACHE=${SRB_CACHE:-$HOME/.cache/srb}
DEFMT_PRINT_VERSION=1.2.0
DEFMT_PRINT=$CACHE/defmt-print/bin/defmt-print
LOG_DIR=${SRB_BOARD_LOGS:-$ROOT/boards/target/logs}  # gitignored (**/target)
QEMU_TIMEOUT=60
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 qemu-system-arm)

FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
die() { echo "FAIL: $*"; exit 1; }
step() { echo "== $*"; }

started=$SECONDS

# ---- 1. toolchain: Debian's rustc 1.96 + library source, lld-22, QEMU ----
have_tools() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
    [ -d /usr/lib/rustlib/src/rust/library ] &&
    command -v ld.lld-22 >/dev/null && command -v qemu-system-arm >/dev/null
}
if have_tools; then
  step "Debian toolchain present: $(/usr/bin/rustc -V), $(qemu-system-arm --version | head -1)"
else
  step "installing ${APT_PACKAGES[*]}"
  SUDO=
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install ${APT_PACKAGES[*]}"
    SUDO=sudo
  fi
  $SUDO apt-get update -qq || die "apt-get update"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >/dev/null || die "apt-get install ${APT_PACKAGES[*]}"
  have_tools || die "toolchain still incomplete after apt-get install"
fi

# ---- 2. defmt-print, built once with the normal (rustup) toolchain ----
if [ -x "$DEFMT_PRINT" ]; then
  step "defmt-print cached: $("$DEFMT_PRINT" --version | head -1)"
else
  step "installing defmt-print $DEFMT_PRINT_VERSION into $CACHE/defmt-print (a few minutes, once)"
  HOST_CARGO=$(command -v cargo || true)
  [ -x "$HOME/.cargo/bin/cargo" ] && HOST_CARGO=$HOME/.cargo/bin/cargo
  [ -n "$HOST_CARGO" ] || HOST_CARGO=/usr/bin/cargo
  env -u RUSTC -u RUSTC_BOOTSTRAP -u RUSTFLAGS -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
    "$HOST_CARGO" install defmt-print --locked --version "$DEFMT_PRINT_VERSION" \
    --root "$CACHE/defmt-print" --quiet || die "cargo install defmt-print"
fi

# ---- 3. build, run, check ----
mkdir -p "$LOG_DIR"

# Debian's cargo and rustc, build-std enabled by the board's .cargo/config.toml.
board_cargo() {
  local board=$1
  shift
  (cd "$ROOT/boards/$board" &&
    env -u RUSTFLAGS -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTC_WRAPPER \
      RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo "$@")
}

# run <board> <machine> <elf> <log>: QEMU's exit code in $RUN_RC, decoded log in <log>.
run() {
  local machine=$2 elf=$3 log=$4
  timeout "$QEMU_TIMEOUT" qemu-system-arm -machine "$machine" -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" \
    </dev/null 2>"$log.qemu-stderr" |
    "$DEFMT_PRINT" -e "$elf" --log-format '{L:<5} {s}' >"$log" 2>&1
  RUN_RC=${PIPESTATUS[0]}
  sed 's/^/    /' "$log"
}

# expect_lines <what> <log> <line>...: every line must appear exactly.
expect_lines() {
  local what=$1 log=$2 ok=1
  shift 2
  for line in "$@"; do
    if ! grep -qxF -- "$line" "$log"; then
      fail "$what: missing log line: $line"
      ok=0
    fi
  done
  [ $ok = 1 ]
}

# expect_match <what> <log> <regex>...: every regex must match a line.
expect_match() {
  local what=$1 log=$2 ok=1
  shift 2
  for re in "$@"; do
    if ! grep -qE -- "$re" "$log"; then
      fail "$what: no log line matches: $re"
      ok=0
    fi
  done
  [ $ok = 1 ]
}

# build_board <board> <label> [cargo args]: release build, output in $LOG_DIR/<label>.build.
build_board() {
  local board=$1 label=$2
  shift 2
  local t0=$SECONDS
  if board_cargo "$board" build --release --quiet "$@" >"$LOG_DIR/$label.build" 2>&1; then
    echo "   built $label in $((SECONDS - t0)) s"
    return 0
  fi
  sed 's/^/    /' "$LOG_DIR/$label.build" | tail -40
  fail "$label: build"
  return 1
}

# mps2-an386: Cortex-M4F, srb channel between SysTick (host) and thread mode
# (DSP) running srb-dsp-sim's Gain + Biquad, checked against the host build.
B=mps2-an386
ELF=$ROOT/boards/$B/target/thumbv7em-none-eabihf/release/srb-board-$B
step "$B: build and run"
if build_board "$B" "$B"; then
  run "$B" mps2-an386 "$ELF" "$LOG_DIR/$B.log"
  if [ "$RUN_RC" = 0 ] &&
    expect_match "$B" "$LOG_DIR/$B.log" \
      '^INFO  board mps2-an386: srb block [0-9]+ bytes, geometry Geometry \{ capacity: 2048, ' &&
    expect_lines "$B" "$LOG_DIR/$B.log" \
      'INFO  board mps2-an386: 64 periods bit-exact vs host build' \
      'INFO  board mps2-an386: 64 periods OK'; then
    pass "$B: exit 0, 64 periods of Gain+Biquad output bit-exact vs the host build"
  else
    [ "$RUN_RC" = 0 ] || fail "$B: QEMU exit code $RUN_RC, want 0 (124 = timeout)"
    sed 's/^/    qemu: /' "$LOG_DIR/$B.log.qemu-stderr"
  fi
fi

# The same firmware with one output sample flipped must fail.
L=$B-corrupt-sample
step "$L: build and run (must fail)"
if build_board "$B" "$L" --features corrupt-sample; then
  run "$B" mps2-an386 "$ELF" "$LOG_DIR/$L.log"
  if [ "$RUN_RC" = 1 ] &&
    expect_lines "$L" "$LOG_DIR/$L.log" 'ERROR board mps2-an386: FAILED' &&
    expect_match "$L" "$LOG_DIR/$L.log" '^ERROR period 17 sample 5: got '; then
    pass "$L: exit 1 and the flipped sample reported (the harness can fail)"
  else
    [ "$RUN_RC" = 1 ] || fail "$L: QEMU exit code $RUN_RC, want 1"
  fi
fi

# mps2-an386's srbd DSP peer (srb-board-dsp-peer; srbd's e2e suite runs it
# for real): given a PSRAM file srbd did not prepare, it must refuse it by
# name and exit 1 — zeros (no setup area), and a valid setup area over a
# block of garbage (srb::attach's validation).
ELF=$ROOT/boards/$B/target/thumbv7em-none-eabihf/release/srb-board-dsp-peer
# run_peer <label> <psram file>: like run, with the PSRAM from the file.
run_peer() {
  local log=$LOG_DIR/$1.log
  timeout "$QEMU_TIMEOUT" qemu-system-arm \
    -object "memory-backend-file,id=mem,size=16M,mem-path=$2,share=on" \
    -machine mps2-an386,memory-backend=mem -nographic \
    -semihosting-config enable=on,target=native -kernel "$ELF" \
    </dev/null 2>"$log.qemu-stderr" |
    "$DEFMT_PRINT" -e "$ELF" --log-format '{L:<5} {s}' >"$log" 2>&1
  RUN_RC=${PIPESTATUS[0]}
  sed 's/^/    /' "$log"
}
L=$B-dsp-peer-hostile
step "$L: the DSP peer refuses PSRAM srbd did not prepare"
PSRAM=$(mktemp /dev/shm/srb-psram.XXXXXX)
truncate -s 16M "$PSRAM"
# peer_refuses <case> <regex> <what>: the peer on $PSRAM exits 1 with a
# log line matching <regex>.
peer_refuses() {
  run_peer "$L-$1" "$PSRAM"
  if [ "$RUN_RC" = 1 ] && expect_match "$L" "$LOG_DIR/$L-$1.log" "$2"; then
    pass "$L: $3, exit 1"
  else
    [ "$RUN_RC" = 1 ] || fail "$L ($1): QEMU exit code $RUN_RC, want 1"
  fi
}
peer_refuses zeros '^ERROR dsp peer: setup area refused: BadMagic\(0\)$' \
  "zeroed PSRAM refused (no setup area)"
# "srbB", version 1, 48000 Hz, 2 ch, 480 frames, block at 4096 (8192 bytes),
# no flags, no chain; the block itself is 0xA5 bytes.
printf 'srbB\x01\0\0\0\x80\xbb\0\0\x02\0\0\0\xe0\x01\0\0\0\x10\0\0\0\x20\0\0' |
  dd of="$PSRAM" conv=notrunc status=none
head -c 8192 /dev/zero | tr '\0' '\245' | dd of="$PSRAM" bs=4096 seek=1 conv=notrunc status=none
peer_refuses garbage '^ERROR dsp peer: srb attach failed: BadMagic' \
  "a garbage srb block refused by srb::attach"
rm -f "$PSRAM"

# microbit: Cortex-M0 (no CAS), both layouts + fdsem, SysTick/WFI stream.
B=microbit
ELF=$ROOT/boards/$B/target/thumbv6m-none-eabi/release/srb-board-$B
step "$B: build and run"
if build_board "$B" "$B"; then
  run "$B" microbit "$ELF" "$LOG_DIR/$B.log"
  if [ "$RUN_RC" = 0 ] &&
    expect_match "$B" "$LOG_DIR/$B.log" \
      '^INFO  board microbit: srb geometry Geometry \{ capacity: 256, ' \
      '^INFO  board microbit: pa geometry Geometry \{ capacity: [0-9]+, ' \
      '^INFO  board microbit: srb layout moved [0-9]+ bytes each way' \
      '^INFO  board microbit: pa layout moved [0-9]+ bytes each way' \
      '^INFO  board microbit: srb stream 16384 bytes from SysTick, main slept in WFI [0-9]+ times' &&
    expect_lines "$B" "$LOG_DIR/$B.log" 'INFO  board microbit: all checks OK'; then
    pass "$B: exit 0, pa + srb layouts, fdsem post/wait, SysTick->WFI stream on thumbv6m"
  else
    [ "$RUN_RC" = 0 ] || fail "$B: QEMU exit code $RUN_RC, want 0 (124 = timeout)"
    sed 's/^/    qemu: /' "$LOG_DIR/$B.log.qemu-stderr"
  fi
fi

echo "board suite took $((SECONDS - started)) s; logs in $LOG_DIR"
if [ "$FAILURES" != 0 ]; then
  echo "FAIL: $FAILURES board check(s) failed"
  exit 1
fi
echo "PASS: all board checks"

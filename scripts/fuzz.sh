#!/usr/bin/env bash
# Fuzzes srbd's hostile-input parsers with cargo-fuzz (libFuzzer):
# the pstream frame decoder, the tagstruct decoder, the command decoders
# (CREATE_PLAYBACK/RECORD_STREAM at every version, whole packet sequences
# through an authorised Session) and the SHM reference validator.
#
# Usage: scripts/fuzz.sh [SECONDS]   (per target; default 20)
#
# Toolchain: cargo-fuzz passes nightly-only compiler flags (-Zsanitizer=address
# and other -Z options), so this script picks, in this order:
#   1. nightly, if `cargo +nightly` runs (a rustup nightly is installed);
#   2. nightly after `rustup toolchain install nightly --profile minimal`
#      (given up after 60 s; fails where no other toolchain can be fetched,
#      as on CI machines with exactly one toolchain);
#   3. the default toolchain (on CI: stable) with RUSTC_BOOTSTRAP=1, which
#      unlocks the same -Z flags on a stable compiler. Stable ships the
#      sanitizer runtimes, so this is the same ASan + libFuzzer build.
# Checked 2026-11-22 on 2 cores: nightly 1.97.0 and stable 1.95.0 with
# RUSTC_BOOTSTRAP=1 both build all targets (3-4 min cold) and run them; the
# stable build also caught a planted panic, heap overflow, leak and hang.
# The two builds live side by side in host-linux/fuzz/target. The choice
# and its reason are printed first ("fuzz.sh: toolchain ...").
# SRB_FUZZ_TOOLCHAIN=nightly|stable forces the choice (stable = the default
# toolchain with RUSTC_BOOTSTRAP=1; use it to test the fallback on a machine
# that has nightly). Installs cargo-fuzz (cargo install --locked) when
# missing. Each target
# starts from its seeds (host-linux/fuzz/seeds/<target>) and its corpus
# (host-linux/fuzz/corpus/<target>, kept between runs, not committed).
# Fails on the first crash, leak or timeout; libFuzzer's reproducer is then
# in host-linux/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
case "$secs" in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;;
esac

# Before RUSTC_BOOTSTRAP is set: cargo-fuzz itself builds on stable.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

toolchain="${SRB_FUZZ_TOOLCHAIN:-}"
why="forced by SRB_FUZZ_TOOLCHAIN"
if [ -z "$toolchain" ]; then
  # A listed nightly must also run: an install cut short may leave a
  # broken one behind.
  if cargo +nightly --version >/dev/null 2>&1; then
    toolchain=nightly why="installed"
  elif command -v rustup >/dev/null 2>&1 &&
      timeout 60 rustup toolchain install nightly --profile minimal </dev/null >/dev/null 2>&1 &&
      cargo +nightly --version >/dev/null 2>&1; then
    toolchain=nightly why="just installed with rustup"
  else
    toolchain=stable why="no nightly installed and none could be installed"
  fi
fi
case "$toolchain" in
  nightly)
    tc=(+nightly)
    echo "fuzz.sh: toolchain nightly ($(rustc +nightly --version); $why)" >&2 ;;
  stable)
    # The default toolchain, whatever rustup calls it (stable, 1.95.0, ...).
    tc=()
    export RUSTC_BOOTSTRAP=1
    echo "fuzz.sh: toolchain default ($(rustc --version)) with RUSTC_BOOTSTRAP=1 ($why)" >&2 ;;
  *) echo "fuzz.sh: SRB_FUZZ_TOOLCHAIN must be stable or nightly, got '$toolchain'" >&2; exit 2 ;;
esac

cd host-linux/fuzz
targets=$(cargo "${tc[@]}" fuzz list)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
cargo "${tc[@]}" fuzz build
summary=()
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  echo "==> fuzzing $t for ${secs}s" >&2
  # -timeout: an input running 20 s is a hang; -rss_limit_mb: libFuzzer's
  # default (2 GiB), stated.
  if ! cargo "${tc[@]}" fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$logs/$t.log" 2>&1; then
    # From the first report (panic, sanitizer, libFuzzer's own deadly
    # signal, timeout or OOM) on, else the end; the cargo-fuzz epilogue
    # alone would hide a sanitizer's report.
    first=$(grep -n -m1 -E 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer|^SUMMARY: ' "$logs/$t.log" | cut -d: -f1 || true)
    if [ -n "$first" ]; then
      sed -n "${first},$((first + 149))p" "$logs/$t.log" >&2
    else
      tail -n 60 "$logs/$t.log" >&2
    fi
    echo "fuzz.sh: $t FAILED (reproducer under host-linux/fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | grep -o '[0-9]*')
  corpus=$(find "corpus/$t" -type f | wc -l)
  summary+=("$t: ${runs:-?} executions, coverage ${cov:-?} edges, corpus $corpus, no crash")
done
printf '%s\n' "${summary[@]}"
echo "fuzz.sh: all targets ran ${secs}s without a crash"

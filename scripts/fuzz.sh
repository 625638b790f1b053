#!/usr/bin/env bash
# Fuzzes srbd's hostile-input parsers with cargo-fuzz (libFuzzer):
# the pstream frame decoder, the tagstruct decoder, the command decoders
# (CREATE_PLAYBACK/RECORD_STREAM at every version, whole packet sequences
# through an authorised Session) and the SHM reference validator.
#
# Usage: scripts/fuzz.sh [SECONDS]   (per target; default 20)
#
# Toolchain: cargo-fuzz needs nightly compiler flags (-Zsanitizer). It uses
# an installed nightly toolchain; else it tries to install one; where that
# is impossible (a machine with exactly one toolchain, as CI machines may
# be) it uses the stable toolchain with RUSTC_BOOTSTRAP=1, which unlocks
# the same flags (checked: every target builds and runs that way).
# SRB_FUZZ_TOOLCHAIN=stable|nightly forces the choice. Installs cargo-fuzz
# when missing. Each target
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

toolchain="${SRB_FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
  if rustup toolchain list | grep -q '^nightly'; then
    toolchain=nightly
  elif timeout 60 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
case "$toolchain" in
  nightly) tc=(+nightly); echo "fuzz.sh: toolchain nightly" >&2 ;;
  stable)
    # The default toolchain, whatever rustup calls it.
    tc=()
    echo "fuzz.sh: default toolchain ($(rustc --version)) with RUSTC_BOOTSTRAP=1 (no nightly)" >&2
    export RUSTC_BOOTSTRAP=1 ;;
  *) echo "fuzz.sh: SRB_FUZZ_TOOLCHAIN must be stable or nightly, got '$toolchain'" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

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
    grep -A2 'panicked at' "$logs/$t.log" >&2 || true
    tail -n 40 "$logs/$t.log" >&2
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

#!/usr/bin/env bash
# Plays an audio file through srbd with the emulated Cortex-M4F as its DSP:
# builds the board DSP peer firmware (scripts/board-peer.sh) and srbd, starts
# srbd --dsp board:ELF in a private directory with a WAV output, paplays the
# file, stops srbd and says where the output, srbd's log and the firmware's
# defmt log are.
#
# Usage: scripts/play-on-board.sh FILE [CHAIN]
#   CHAIN: an srb-dsp-sim chain spec, e.g. gain:-6dB,lowpass:8000Hz
#          (default: none, bit-exact)
# Needs paplay (pulseaudio-utils) and the board toolchain + qemu-system-arm
# (scripts/test-boards.sh installs them once).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE [CHAIN]" >&2; exit 2; }
FILE=$(realpath "$1")
CHAIN=${2:-}
cd "$(dirname "$0")/.."
ELF=$(bash scripts/board-peer.sh)
cargo build -q -p srbd --bin srbd
SRBD=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/srbd
DIR=$(mktemp -d /tmp/srb-board-play.XXXXXX)
chmod 700 "$DIR"
mkdir -m 700 "$DIR/xdg"
ARGS=(--socket "$DIR/native" --dsp "board:$ELF" --output "wav:$DIR/out.wav")
[ -n "$CHAIN" ] && ARGS+=(--dsp-chain "$CHAIN")
XDG_RUNTIME_DIR="$DIR/xdg" RUST_LOG=info NO_COLOR=1 "$SRBD" "${ARGS[@]}" >"$DIR/srbd.out" 2>"$DIR/srbd.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$DIR/native" ] && break; sleep 0.1; done
[ -S "$DIR/native" ] || { cat "$DIR/srbd.log" >&2; exit 1; }
# The firmware boots under QEMU before it pulls; give it its first periods.
for _ in $(seq 100); do grep -q "DSP attached" "$DIR/srbd.log" && break; sleep 0.1; done
sleep 0.5
PULSE_SERVER="unix:$DIR/native" paplay "$FILE"
sleep 0.2
kill -TERM $PID
wait $PID || true
trap - EXIT
echo "output:        $DIR/out.wav"
echo "srbd log:      $DIR/srbd.log"
echo "firmware log:  defmt-print -e $ELF < $DIR/dsp-board.defmt"

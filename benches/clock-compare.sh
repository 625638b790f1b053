#!/usr/bin/env bash
# What a client pays to learn where the audio clock is: reading srbd's
# state page against asking the server over the protocol, srbd and a
# private, real PulseAudio side by side, with the same libpulse client
# (benches/pulse-bench `clock-read`) on both.
#
# Each server gets one playing stream (s16le 48 kHz stereo, silence,
# uncorked: a corked stream's clock stands still) and `clock-read` times
#   - GET_PLAYBACK_LATENCY round trips (`pa_stream_update_timing_info` to
#     its callback, what `pa_stream_get_time` needs to be current), one
#     after another, on srbd and on PulseAudio;
#   - on srbd only (PulseAudio has no page), reading the clock from the
#     state page received on srbd's control socket: `sink_clock(0)` +
#     `position_at(monotonic_ns())`, and a whole `snapshot()`, in batches
#     of 1000 reads (per-read time = batch mean; median and p99 over the
#     batches), while the stream plays;
#   - that the page's clock and the stream's agree: their difference, over
#     about 30 checks and a second or more, stays within a mixer period.
# Servers: `srbd` (DSP on, the default) with its own --socket and
# --control-socket, and PulseAudio (module-null-sink), both float32le
# 48 kHz stereo, the same priority. Rounds run in alternating order; the
# table gives the median over rounds of each figure. Prints a Markdown
# table on stdout (progress on stderr).
#
# Usage: benches/clock-compare.sh [--quick] [--requests N] [--batches N]
#            [--rounds N] [--keep]
#   --quick         1 round of 2000 requests and 200 batches
#   --requests N    round trips per server and round (default 10000)
#   --batches N     timed batches of 1000 page reads per kind (default 1000)
#   --rounds N      rounds, each a new connection to each server (default 3)
#   --keep          keep the temporary directory (logs, raw lines)
#
# Needs Debian's pulseaudio, pulseaudio-utils and libpulse-dev; installs
# them with apt-get when missing and running as root (benches/lib.sh).
# Builds srbd and the bench crate in release mode ($CARGO_TARGET_DIR
# honoured). Every process it starts is stopped on exit; the temporary
# directory is removed unless the run failed or --keep was given.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

requests=10000
batches=1000
rounds=3
keep=0
while (($#)); do
    case "$1" in
    --quick) requests=2000; batches=200; rounds=1 ;;
    --requests) requests="${2:?--requests needs a value}"; shift ;;
    --batches) batches="${2:?--batches needs a value}"; shift ;;
    --rounds) rounds="${2:?--rounds needs a value}"; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "clock-compare: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in requests batches rounds; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "clock-compare: $v must be a positive integer" >&2; exit 2; }
done

bench_name=clock-compare
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"

need_pulseaudio nproc
build_release clock-read
srbd="$target/release/srbd"
clock_read="$target/release/clock-read"
start_scratch pa srbd

# --------------------------------------------------------------- servers
start_pulseaudio "$tmp/pa/native" "$tmp/pa.log" 0
control="$tmp/srbd/control"
"$srbd" --socket "$tmp/srbd/native" --control-socket "$control" --format float32le --rate 48000 \
    --channels 2 >"$tmp/srbd.out" 2>"$tmp/srbd.log" &
srbd_pid=$!
started+=("$srbd_pid")
wait_ready "PulseAudio $pa_version" "unix:$tmp/pa/native" "$pa_pid" "$tmp/pa.log"
wait_ready srbd "unix:$tmp/srbd/native" "$srbd_pid" "$tmp/srbd.log"
[[ -S "$control" ]] || die "srbd answers but has no control socket at $control"
log "both servers answer"

# ---------------------------------------------------------------- rounds
# One clock-read per server and round; its summary line goes to
# $tmp/<server>-<round>.out.
run_one() { # $1: pa | srbd, $2: round
    local args=(--server "unix:$tmp/$1/native" --requests "$requests" --batches "$batches")
    if [[ "$1" == srbd ]]; then args+=(--control "$control"); fi
    log "round $(($2 + 1))/$rounds: $1"
    timeout 300 "$clock_read" "${args[@]}" >"$tmp/$1-$2.out" 2>"$tmp/$1-$2.err" || {
        cat "$tmp/$1-$2.err" >&2
        die "clock-read against $1 failed"
    }
}
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then order=(srbd pa); else order=(pa srbd); fi
    for k in "${order[@]}"; do run_one "$k" "$r"; done
done

# The median over rounds of field $2 of server $1's lines.
field() {
    local k="$1" name="$2" r
    for ((r = 0; r < rounds; r++)); do
        sed -n "s/.*\b$name=\([-0-9.]*\).*/\1/p" "$tmp/$k-$r.out"
    done | sort -g | awk '{v[NR]=$1} END{ if (NR == 0) exit 1; print v[int((NR + 1) / 2)] }' ||
        die "no $name in clock-read's output for $k"
}

clock_med="$(field srbd page_clock_median_ns)"
clock_p99="$(field srbd page_clock_p99_ns)"
snap_med="$(field srbd page_snapshot_median_ns)"
snap_p99="$(field srbd page_snapshot_p99_ns)"
srbd_med="$(field srbd protocol_median_us)"
srbd_p99="$(field srbd protocol_p99_us)"
pa_med="$(field pa protocol_median_us)"
pa_p99="$(field pa protocol_p99_us)"
spread="$(field srbd clock_offset_spread_us)"
drift="$(field srbd clock_drift_us)"
span="$(field srbd clock_span_s)"
checks="$(field srbd clock_checks)"
state="$(sed -n 's/.*page_sink_state=\([a-z]*\).*/\1/p' "$tmp/srbd-0.out")"
ns_of_us() { awk -v u="$1" 'BEGIN{printf "%.1f", u * 1000}'; }
times() { # $1 ns over $2 ns, as "N×"
    awk -v a="$1" -v b="$2" 'BEGIN{ if (b <= 0) printf "n/a"; else if (a / b >= 10) printf "%.0f×", a / b; else printf "%.1f×", a / b }'
}

# ------------------------------------------------------------------ report
echo "### Reading the audio clock: srbd's state page vs the protocol ($(date -u +%Y-%m-%d), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "One playing stream per server (s16le 48 kHz stereo, silence). Protocol: $requests GET_PLAYBACK_LATENCY round trips per round (\`pa_stream_update_timing_info\` to its callback, libpulse standard mainloop). Page: $batches batches of 1000 reads per kind, per-read time = batch mean. Median over $rounds round(s) of each figure."
echo
echo "| how the client learns the clock | median | p99 | × page clock read |"
echo "|---|---:|---:|---:|"
echo "| srbd, state page: \`sink_clock(0)\` + \`position_at(monotonic_ns())\` | $clock_med ns | $clock_p99 ns | 1× |"
echo "| srbd, state page: whole \`snapshot()\` | $snap_med ns | $snap_p99 ns | $(times "$snap_med" "$clock_med") |"
echo "| srbd, protocol: GET_PLAYBACK_LATENCY round trip | $srbd_med µs | $srbd_p99 µs | $(times "$(ns_of_us "$srbd_med")" "$clock_med") |"
echo "| PulseAudio $pa_version, protocol: GET_PLAYBACK_LATENCY round trip | $pa_med µs | $pa_p99 µs | $(times "$(ns_of_us "$pa_med")" "$clock_med") |"
echo
echo "srbd's protocol round trip against PulseAudio's: $(ratio "$srbd_med" "$pa_med") (median). The page's sink was $state; its interpolated clock minus the stream's \`pa_stream_get_time\` moved by at most $spread µs over $checks checks in $span s (srbd's mixer period: 10 ms; drift first to last check $drift µs)."
log "done"

#!/usr/bin/env bash
# srbd against a private, real PulseAudio, with the same real libpulse
# clients on both servers in the same run:
#   (a) round-trip latency of GET_SERVER_INFO through libpulse
#       (benches/pulse-bench `pa-latency`: 10,000 requests per server, one
#       after another, split into rounds run in rotating order), then once
#       more per server with client and server pinned to one CPU and to
#       different CPUs (taskset), since placement decides much of it;
#   (b) the daemon's CPU time (utime + stime from /proc/<pid>/stat, threads
#       and reaped children included; for srbd with the DSP on, dsp-sim's
#       too), its resident memory growth (VmRSS sampled every 0.5 s, peak
#       minus the value before the streams started) and its thread count,
#       while 16 and then 64 concurrent `pacat --latency-msec=10` streams
#       of 48 kHz stereo s16le play for 60 s each (--quick: 10 s);
#   (c) the floor of a same-CPU round trip: a raw eventfd ping-pong between
#       two threads pinned to one CPU (pulse-bench `eventfd-floor`), to
#       show what srbd adds above the wake-ups themselves.
# Servers: PulseAudio (module-null-sink, float32le 48 kHz stereo),
# `srbd --dsp off` and `srbd --dsp on` (the default), all with the same
# float32le 48 kHz stereo sink. Prints a Markdown table on stdout (progress
# on stderr), draws the latency distributions into benches/pulse-latency.svg.
#
# Usage: benches/pulse-compare.sh [--quick] [--seconds N] [--requests N]
#            [--rounds N] [--streams N] [--svg PATH] [--keep]
#            [--pa-default-priority]
#   --quick         10 s of streams instead of 60 s
#   --seconds N     stream measurement window in seconds
#   --requests N    latency requests per server (default 10000)
#   --rounds N      latency rounds, each a new connection (default 5)
#   --streams LIST  concurrent pacat streams, comma-separated (default 16,64)
#   --svg PATH      where the plot goes (default benches/pulse-latency.svg)
#   --keep          keep the temporary directory (raw samples, logs)
#   --pa-default-priority
#                   let PulseAudio raise its priority as daemon.conf says
#                   (as root: nice -11, SCHED_RR for the sink thread); by
#                   default it runs with --high-priority=no --realtime=no,
#                   at the same nice 0 / SCHED_OTHER as srbd.
#
# Needs Debian's pulseaudio, pulseaudio-utils and libpulse-dev; installs
# them with apt-get when missing and running as root. Builds srbd and the
# bench crate in release mode ($CARGO_TARGET_DIR honoured). Every process
# it starts is stopped on exit; the temporary directory is removed unless
# the run failed or --keep was given.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

stream_secs=60
requests=10000
rounds=5
stream_counts=16,64
svg="$root/benches/pulse-latency.svg"
keep=0
pa_default_priority=0
while (($#)); do
    case "$1" in
    --quick) stream_secs=10 ;;
    --seconds) stream_secs="${2:?--seconds needs a value}"; shift ;;
    --requests) requests="${2:?--requests needs a value}"; shift ;;
    --rounds) rounds="${2:?--rounds needs a value}"; shift ;;
    --streams) stream_counts="${2:?--streams needs a value}"; shift ;;
    --svg) svg="$(realpath -m "${2:?--svg needs a value}")"; shift ;;
    --keep) keep=1 ;;
    --pa-default-priority) pa_default_priority=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pulse-compare: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
IFS=, read -r -a counts <<<"$stream_counts"
for n in "${counts[@]}"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "pulse-compare: --streams takes positive integers" >&2; exit 2; }
done
for v in stream_secs requests rounds; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "pulse-compare: $v must be a positive integer" >&2; exit 2; }
done
((requests >= rounds)) || { echo "pulse-compare: --requests must be at least --rounds" >&2; exit 2; }

bench_name=pulse-compare
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"

need_pulseaudio pacat getconf ps taskset nproc
build_release pa-latency plot eventfd-floor
srbd="$target/release/srbd"
pa_latency="$target/release/pa-latency"
plot="$target/release/plot"
floor="$target/release/eventfd-floor"

# ----------------------------------------------------- processes, clean-up
start_scratch pa srbd srbd-dsp

# --------------------------------------------------------------- servers
pa_sock="$tmp/pa/native"
start_pulseaudio "$pa_sock" "$tmp/pa.log" "$pa_default_priority"

srbd_common=(--format float32le --rate 48000 --channels 2)
# Each srbd gets its own control socket (the default path would be shared).
"$srbd" --socket "$tmp/srbd/native" --control-socket "$tmp/srbd/control" --dsp off "${srbd_common[@]}" >"$tmp/srbd.out" 2>"$tmp/srbd.log" &
srbd_pid=$!
started+=("$srbd_pid")
"$srbd" --socket "$tmp/srbd-dsp/native" --control-socket "$tmp/srbd-dsp/control" --dsp on "${srbd_common[@]}" >"$tmp/srbd-dsp.out" 2>"$tmp/srbd-dsp.log" &
srbd_dsp_pid=$!
started+=("$srbd_dsp_pid")

keys=(pa srbd srbd_dsp)
declare -A label spec pid logf
label=([pa]="PulseAudio $pa_version" [srbd]="srbd --dsp off" [srbd_dsp]="srbd --dsp on (default)")
spec=([pa]="unix:$pa_sock" [srbd]="unix:$tmp/srbd/native" [srbd_dsp]="unix:$tmp/srbd-dsp/native")
pid=([pa]="$pa_pid" [srbd]="$srbd_pid" [srbd_dsp]="$srbd_dsp_pid")
logf=([pa]="$tmp/pa.log" [srbd]="$tmp/srbd.log" [srbd_dsp]="$tmp/srbd-dsp.log")
for k in "${keys[@]}"; do
    wait_ready "${label[$k]}" "${spec[$k]}" "${pid[$k]}" "${logf[$k]}"
done
log "all three servers answer"

# --------------------------------------------------------------- transport
# libpulse's own debug log says whether SHM was negotiated and of which
# kind; pa-latency counts the eventfds it holds (two: the server set up a
# shared ring buffer, PulseAudio's srbchannel, for the connection).
declare -A shm
for k in "${keys[@]}"; do
    PULSE_LOG=4 timeout 60 "$pa_latency" --server "${spec[$k]}" --requests 1 --warmup 0 \
        >"$tmp/probe-$k.out" 2>"$tmp/probe-$k.log" || die "transport probe of ${label[$k]} failed (see $tmp/probe-$k.log)"
    if grep -q 'Negotiated SHM: yes' "$tmp/probe-$k.log"; then
        t="$(sed -n 's/^.*Negotiated SHM type: //p' "$tmp/probe-$k.log" | head -n 1)"
        shm[$k]="SHM (${t:-type not logged})"
    elif grep -q 'Negotiated SHM: no' "$tmp/probe-$k.log"; then
        shm[$k]="no SHM"
    else
        shm[$k]="SHM unknown"
    fi
done

# ------------------------------------------------------------- (a) latency
declare -A files ev_lat round_medians
for k in "${keys[@]}"; do files[$k]=""; round_medians[$k]=""; done
per_round=$((requests / rounds))
for ((r = 0; r < rounds; r++)); do
    n=$per_round
    if ((r == rounds - 1)); then n=$((requests - per_round * (rounds - 1))); fi
    # Rotate the order so that no server always goes first.
    for ((j = 0; j < ${#keys[@]}; j++)); do
        k="${keys[$(((r + j) % ${#keys[@]}))]}"
        f="$tmp/lat-$k-$r.txt"
        log "latency round $((r + 1))/$rounds: ${label[$k]}, $n requests"
        timeout 300 "$pa_latency" --server "${spec[$k]}" --requests "$n" --out "$f" >"$tmp/lat-$k-$r.out" \
            2>"$tmp/lat-$k-$r.err" || {
            cat "$tmp/lat-$k-$r.err" >&2
            die "pa-latency against ${label[$k]} failed"
        }
        files[$k]="${files[$k]:+${files[$k]},}$f"
        ev_lat[$k]="$(sed -n 's/.* eventfds=\([0-9]*\) .*/\1/p' "$tmp/lat-$k-$r.out")"
        m="$(sed -n 's/.* median_us=\([0-9.]*\) .*/\1/p' "$tmp/lat-$k-$r.out")"
        round_medians[$k]="${round_medians[$k]:+${round_medians[$k]} / }$m"
    done
done

mkdir -p "$(dirname "$svg")"
plot_args=()
for k in "${keys[@]}"; do plot_args+=("${label[$k]}=${files[$k]}"); done
"$plot" --out "$svg" --title "GET_SERVER_INFO round trip through libpulse, $requests requests per server" \
    "${plot_args[@]}" >"$tmp/plot.out" || die "plot failed"
declare -A med p99 p90 maxl
i=0
while read -r line; do
    k="${keys[$i]}"
    med[$k]="$(sed -n 's/.* median_us=\([0-9.]*\).*/\1/p' <<<"$line")"
    p90[$k]="$(sed -n 's/.* p90_us=\([0-9.]*\).*/\1/p' <<<"$line")"
    p99[$k]="$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$line")"
    maxl[$k]="$(sed -n 's/.* max_us=\([0-9.]*\).*/\1/p' <<<"$line")"
    i=$((i + 1))
done <"$tmp/plot.out"
((i == ${#keys[@]})) || die "plot printed $i summaries, expected ${#keys[@]}"

# ------------------------------------------------- (a2) latency by placement
# Where the scheduler puts the client and the server's connection thread
# decides much of a round trip: on one CPU a wake-up is a local context
# switch, across CPUs (on a VM) an inter-processor interrupt that may also
# have to wake an idle vCPU. Unpinned rounds above get whichever placement
# the scheduler picks; here both are pinned: the server (every thread,
# and the threads it starts later) to the last CPU, the client to the same
# CPU or to CPU 0. $per_round requests per server and placement.
declare -A pl_med pl_p99 pl_cpu
placements=(same)
if (($(nproc) >= 2)); then placements+=(apart); fi
last_cpu=$(($(nproc) - 1))
for pl in "${placements[@]}"; do
    client_cpu=$last_cpu
    if [[ "$pl" == apart ]]; then client_cpu=0; fi
    for k in "${keys[@]}"; do
        taskset -a -p -c "$last_cpu" "${pid[$k]}" >/dev/null || die "cannot pin ${label[$k]}"
        f="$tmp/lat-$k-$pl.txt"
        log "latency, placement $pl: ${label[$k]}, $per_round requests"
        timeout 300 taskset -c "$client_cpu" "$pa_latency" --server "${spec[$k]}" --requests "$per_round" \
            --out "$f" >"$tmp/lat-$k-$pl.out" 2>"$tmp/lat-$k-$pl.err" || {
            cat "$tmp/lat-$k-$pl.err" >&2
            die "pa-latency ($pl) against ${label[$k]} failed"
        }
        taskset -a -p -c "0-$last_cpu" "${pid[$k]}" >/dev/null || die "cannot unpin ${label[$k]}"
        pl_med[$k,$pl]="$(sed -n 's/.* median_us=\([0-9.]*\) .*/\1/p' "$tmp/lat-$k-$pl.out")"
        pl_p99[$k,$pl]="$(sed -n 's/.* p99_us=\([0-9.]*\) .*/\1/p' "$tmp/lat-$k-$pl.out")"
        pl_cpu[$k,$pl]="$(sed -n 's/.* client_cpu_us=\([0-9.]*\).*/\1/p' "$tmp/lat-$k-$pl.out")"
    done
done

# --------------------------------------------------------------- (c) floor
log "floor: raw eventfd ping-pong on CPU $last_cpu, $per_round round trips"
floor_out="$(taskset -c "$last_cpu" "$floor" --requests "$per_round")" || die "eventfd-floor failed"
floor_med="$(sed -n 's/.* median_us=\([0-9.]*\) .*/\1/p' <<<"$floor_out")"
floor_p99="$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$floor_out")"

# ----------------------------------------------------------------- (b) CPU
clk_tck="$(getconf CLK_TCK)"
bytes_per_sec=$((48000 * 2 * 2))
warmup_secs=3
# Non-silent input (random bytes), longer than warm-up + window, so no
# stream reaches its end while it is measured. Each pacat reads its own
# descriptor of it, whose offset (fdinfo pos) is the audio it has taken.
head -c $(((warmup_secs + stream_secs + 15) * bytes_per_sec)) /dev/urandom >"$tmp/noise.raw"

# "self children": utime+stime of the process (all threads) and
# cutime+cstime of its reaped children, in clock ticks.
ticks() {
    local s f
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    s="${s##*) }"
    read -r -a f <<<"$s"
    echo "$((f[11] + f[12])) $((f[13] + f[14]))"
}
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
stdin_pos() { awk '/^pos:/{print $2}' "/proc/$1/fdinfo/0" 2>/dev/null || echo 0; }
eventfds_of() { find "/proc/$1/fd" -lname 'anon_inode:\[eventfd\]' 2>/dev/null | wc -l; }

declare -A cpu_s cpu_self_s cpu_child_s cpu_pct wall_s client_cpu_s audio_mean audio_min ev_pacat inputs restarts
declare -A rss_growth threads
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
for n in "${counts[@]}"; do
for k in "${keys[@]}"; do
    log "CPU: ${label[$k]}: $n pacat streams, ${warmup_secs} s warm-up + ${stream_secs} s measured"
    pacats=()
    declare -A refused=()
    start_pacat() { # $1: stream number; sets pacats[$1]
        PULSE_SERVER="${spec[$k]}" pacat --playback --raw --latency-msec=10 --rate=48000 --channels=2 \
            --format=s16le --client-name="pulse-bench-$1" <"$tmp/noise.raw" >"$tmp/pacat-$k-$1.log" 2>&1 &
        pacats[$1]="$!"
        started+=("$!")
    }
    srv="${pid[$k]}"
    rss0_kb="$(rss_kb "$srv")"
    for ((s = 0; s < n; s++)); do start_pacat "$s"; done
    # Every stream must be connected and playing (reading its input). A
    # connect refused while the server's accept queue is full (seen with
    # PulseAudio when 16 clients connect at once: libpulse connects
    # non-blocking and gives up on EAGAIN) is retried, at most 3 times.
    deadline=$((SECONDS + 20))
    while :; do
        ready=0
        for ((s = 0; s < n; s++)); do
            p="${pacats[$s]}"
            if ! alive "$p" && grep -q "Connection refused" "$tmp/pacat-$k-$s.log" \
                && ((${refused[$s]:-0} < 3)); then
                refused[$s]=$((${refused[$s]:-0} + 1))
                log "  pacat $s: connection refused by ${label[$k]}; retry ${refused[$s]}/3"
                start_pacat "$s"
                continue
            fi
            alive "$p" || { cat "$tmp/pacat-$k-$s.log" >&2; die "pacat $s against ${label[$k]} exited early"; }
            if (($(stdin_pos "$p") > 0)); then ready=$((ready + 1)); fi
        done
        if ((ready == n)); then break; fi
        ((SECONDS < deadline)) || die "only $ready of $n pacat streams started playing on ${label[$k]} within 20 s"
        sleep 0.2
    done
    nap "$warmup_secs"

    declare -A c0=() c1=() pos0=() pos1=()
    read -r self0 reaped0 < <(ticks "$srv") || die "${label[$k]} is gone"
    for c in $(children "$srv"); do c0[$c]="$(ticks "$c" | cut -d' ' -f1)"; done
    cl0=0
    for p in "${pacats[@]}"; do
        pos0[$p]="$(stdin_pos "$p")"
        cl0=$((cl0 + $(ticks "$p" | cut -d' ' -f1)))
    done
    t0="$(date +%s%N)"
    # The window, sampling the daemon's resident memory every 0.5 s.
    peak_kb="$(rss_kb "$srv")"
    end_ns=$((t0 + stream_secs * 1000000000))
    while (($(date +%s%N) < end_ns)); do
        nap 0.5
        r="$(rss_kb "$srv")"
        if ((r > peak_kb)); then peak_kb=$r; fi
    done
    read -r self1 reaped1 < <(ticks "$srv") || die "${label[$k]} exited during the measurement"
    for c in $(children "$srv"); do c1[$c]="$(ticks "$c" | cut -d' ' -f1)"; done
    cl1=0
    for p in "${pacats[@]}"; do
        alive "$p" || die "a pacat stream on ${label[$k]} ended during the measurement"
        pos1[$p]="$(stdin_pos "$p")"
        cl1=$((cl1 + $(ticks "$p" | cut -d' ' -f1)))
    done
    t1="$(date +%s%N)"

    # Children (dsp-sim): alive at both ends, their delta; started during
    # the window, all of it; ended and reaped during it, what srbd's
    # cutime gained beyond what they already had at the start.
    child_ticks=$((reaped1 - reaped0))
    new=0
    for c in "${!c1[@]}"; do
        if [[ -n "${c0[$c]:-}" ]]; then
            child_ticks=$((child_ticks + c1[$c] - c0[$c]))
        else
            child_ticks=$((child_ticks + c1[$c]))
            new=$((new + 1))
        fi
    done
    for c in "${!c0[@]}"; do
        if [[ -z "${c1[$c]:-}" ]]; then child_ticks=$((child_ticks - c0[$c])); fi
    done
    restarts[$k,$n]=$new
    ev_pacat[$k,$n]="$(eventfds_of "${pacats[0]}")"
    inputs[$k,$n]="$(PULSE_SERVER="${spec[$k]}" timeout 10 pactl list short sink-inputs 2>/dev/null | grep -c . || true)"

    amin="" asum=0
    for p in "${pacats[@]}"; do
        d=$((pos1[$p] - pos0[$p]))
        asum=$((asum + d))
        if [[ -z "$amin" ]] || ((d < amin)); then amin=$d; fi
    done
    wall_s[$k,$n]="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e9}')"
    cpu_self_s[$k,$n]="$(awk -v t=$((self1 - self0)) -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}')"
    cpu_child_s[$k,$n]="$(awk -v t="$child_ticks" -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}')"
    cpu_s[$k,$n]="$(awk -v t=$((self1 - self0 + child_ticks)) -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}')"
    cpu_pct[$k,$n]="$(awk -v c="${cpu_s[$k,$n]}" -v w="${wall_s[$k,$n]}" 'BEGIN{printf "%.1f", 100*c/w}')"
    client_cpu_s[$k,$n]="$(awk -v t=$((cl1 - cl0)) -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}')"
    audio_mean[$k,$n]="$(awk -v s="$asum" -v n="$n" -v b="$bytes_per_sec" 'BEGIN{printf "%.2f", s/n/b}')"
    audio_min[$k,$n]="$(awk -v s="$amin" -v b="$bytes_per_sec" 'BEGIN{printf "%.2f", s/b}')"
    log "  ${label[$k]}: ${cpu_s[$k,$n]} s CPU in ${wall_s[$k,$n]} s (${cpu_pct[$k,$n]} % of one CPU)"
    rss_growth[$k,$n]="$(awk -v a="$peak_kb" -v b="$rss0_kb" 'BEGIN{printf "%.1f", (a-b)/1024}')"
    threads[$k,$n]="$(awk '/^Threads:/{print $2}' "/proc/$srv/status")"
    log "  ${label[$k]}: RSS growth ${rss_growth[$k,$n]} MB, ${threads[$k,$n]} threads"
    stop_pids "${pacats[@]}"
    # Let the server settle (connections closed) before the next run.
    nap 2
    unset c0 c1 pos0 pos1
done
done

# ------------------------------------------------------------------ report
transport() {
    local k="$1" ev="$2" ring
    if [[ "$ev" =~ ^[0-9]+$ ]] && ((ev >= 2)); then ring="srbchannel"; else ring="socket only"; fi
    echo "${shm[$k]}, $ring"
}

nproc_n="$(nproc)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "### srbd vs PulseAudio $pa_version ($(date -u +%Y-%m-%d), $nproc_n CPUs, load average at the end $load)"
echo
echo "Latency: GET_SERVER_INFO through libpulse, $requests requests per server in $rounds rounds (rotating order). Ratios are srbd / PulseAudio (below 1: srbd better)."
echo
echo "| server | transport: latency client / pacat | RTT median µs | RTT p99 µs | median ratio | p99 ratio |"
echo "|---|---|---:|---:|---:|---:|"
for k in "${keys[@]}"; do
    n0="${counts[0]}"
    echo "| ${label[$k]} | $(transport "$k" "${ev_lat[$k]}") / $(transport "$k" "${ev_pacat[$k,$n0]}") | ${med[$k]} | ${p99[$k]} | $(ratio "${med[$k]}" "${med[pa]}") | $(ratio "${p99[$k]}" "${p99[pa]}") |"
done
echo
echo "CPU and memory: daemon utime+stime (dsp-sim's included for --dsp on) and resident memory growth (peak VmRSS sampled every 0.5 s minus VmRSS before the streams) while N \`pacat --latency-msec=10\` streams (48 kHz stereo s16le) play for ${stream_secs} s; threads at the end of the window. Ratios against PulseAudio at the same N."
echo
echo "| server | streams | CPU s in ${stream_secs} s | CPU ratio | RSS growth MB | RSS ratio | threads |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for n in "${counts[@]}"; do
    for k in "${keys[@]}"; do
        cpu="${cpu_s[$k,$n]} (${cpu_pct[$k,$n]} %)"
        if [[ "$k" == srbd_dsp ]]; then
            cpu="${cpu_s[$k,$n]} (${cpu_pct[$k,$n]} %; srbd ${cpu_self_s[$k,$n]} + dsp-sim ${cpu_child_s[$k,$n]})"
        fi
        echo "| ${label[$k]} | $n | $cpu | $(ratio "${cpu_s[$k,$n]}" "${cpu_s[pa,$n]}") | ${rss_growth[$k,$n]} | $(ratio "${rss_growth[$k,$n]}" "${rss_growth[pa,$n]}") | ${threads[$k,$n]} |"
    done
done
echo
echo "| server | streams | RTT p90 / max µs | round medians µs | window s | audio taken per stream, mean / min s | sink inputs at end | pacats' CPU s | dsp-sim (re)starts in window |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|"
for n in "${counts[@]}"; do
    for k in "${keys[@]}"; do
        echo "| ${label[$k]} | $n | ${p90[$k]} / ${maxl[$k]} | ${round_medians[$k]} | ${wall_s[$k,$n]} | ${audio_mean[$k,$n]} / ${audio_min[$k,$n]} | ${inputs[$k,$n]} | ${client_cpu_s[$k,$n]} | ${restarts[$k,$n]} |"
    done
done
echo
echo "Latency by placement ($per_round requests each; the server pinned to CPU $last_cpu, the client to the same CPU or to CPU 0): median / p99 µs, and the median ratio to PulseAudio."
echo
hdr="| server |"; sep="|---|"
for pl in "${placements[@]}"; do
    case "$pl" in same) name="same CPU" ;; apart) name="different CPUs" ;; esac
    hdr="$hdr $name: median / p99 µs | ratio |"; sep="$sep---:|---:|"
done
echo "$hdr"
echo "$sep"
for k in "${keys[@]}"; do
    row="| ${label[$k]} |"
    for pl in "${placements[@]}"; do
        row="$row ${pl_med[$k,$pl]} / ${pl_p99[$k,$pl]} | $(ratio "${pl_med[$k,$pl]}" "${pl_med[pa,$pl]}") |"
    done
    echo "$row"
done
echo
echo "Floor on one CPU: a raw eventfd ping-pong between two threads pinned to CPU $last_cpu: median $floor_med µs, p99 $floor_p99 µs. Above it, on the same CPU: $(for k in "${keys[@]}"; do printf '%s +%s µs; ' "${label[$k]}" "$(awk -v a="${pl_med[$k,same]}" -v b="$floor_med" 'BEGIN{printf "%.1f", a-b}')"; done)"
echo
echo "The client's own CPU per round trip on the same CPU (libpulse's thread, user + system; a round trip on one CPU cannot be shorter): $(for k in "${keys[@]}"; do printf '%s %s µs; ' "${label[$k]}" "${pl_cpu[$k,same]}"; done)so the lowest same-CPU ratio any server could reach against PulseAudio here is $(ratio "${pl_cpu[srbd,same]}" "${pl_med[pa,same]}")."
echo
echo "Plot: ${svg#"$root"/}. PulseAudio was started as: \`$(pa_cmd_shown)\`"
log "done; plot written to $svg"

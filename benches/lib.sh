# Shell parts shared by benches/pulse-compare.sh and benches/clock-compare.sh
# (sourced, not run): packages, the release build, a private scratch
# directory whose processes are all stopped on exit, and a private
# PulseAudio next to srbd.
#
# The caller sets before sourcing:
#   bench_name  prefix of every log line and of the temporary directory
#   root        the repository root
#   keep        1: keep the temporary directory even after a clean run
# and then calls, in this order:
#   need_pulseaudio CMD...   installs Debian's pulseaudio, pulseaudio-utils,
#                            libpulse-dev when missing (as root), checks that
#                            each CMD is on PATH, sets pa_version
#   build_release BIN...     builds srbd + dsp-sim and benches/pulse-bench
#                            (release, $CARGO_TARGET_DIR honoured), sets
#                            target, checks that each BIN is in
#                            $target/release
#   start_scratch DIR...     makes $tmp (and each DIR below it), installs
#                            the clean-up trap, gives the servers and
#                            clients a private HOME and XDG_RUNTIME_DIR
#   start_pulseaudio SOCKET LOG DEFAULT_PRIORITY
#                            a private PulseAudio serving SOCKET; sets
#                            pa_cmd and pa_pid
#   wait_ready NAME SPEC PID LOG
#                            until `pactl info` gets an answer from SPEC
# Every process started in the background must be appended to `started`;
# the trap stops them all (stop_pids stops some earlier).

log() { echo "$bench_name: $*" >&2; }
die() { echo "$bench_name: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

need_pulseaudio() {
    local missing=() p c
    for p in pulseaudio pulseaudio-utils libpulse-dev; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [[ "$(id -u)" != 0 ]]; then
            die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
        fi
        log "installing ${missing[*]}"
        apt-get update -qq >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
    for c in pulseaudio pactl timeout "$@"; do
        command -v "$c" >/dev/null || die "$c not found on PATH"
    done
    pa_version="$(pulseaudio --version 2>/dev/null | awk '{print $2; exit}')"
    [[ -n "$pa_version" ]] || die "pulseaudio --version printed nothing"
    [[ "$pa_version" == 16.* ]] || log "note: PulseAudio is $pa_version, not 16.x"
}

# ------------------------------------------------------------------- build
build_release() {
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        target="$(realpath -m "$CARGO_TARGET_DIR")"
    else
        target="$root/target"
    fi
    log "building srbd and dsp-sim (release, target dir $target)"
    (cd "$root" && cargo build --release -p srbd --bins --target-dir "$target") >&2 ||
        die "building srbd failed"
    log "building benches/pulse-bench (release)"
    cargo build --release --manifest-path "$root/benches/pulse-bench/Cargo.toml" --target-dir "$target" >&2 ||
        die "building pulse-bench failed"
    local b
    for b in srbd dsp-sim "$@"; do
        [[ -x "$target/release/$b" ]] || die "$target/release/$b was not built"
    done
}

# ----------------------------------------------------- processes, clean-up
started=() # every pid the script started and has not stopped yet

# A pid that exists and is not a zombie.
alive() {
    local s
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    s="${s##*) }"
    [[ "${s:0:1}" != Z ]]
}

# Stops the given pids: SIGTERM, up to 5 s, then SIGKILL.
stop_pids() {
    local p i
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for ((i = 0; i < 50; i++)); do
            alive "$p" || break
            sleep 0.1
        done
        if alive "$p"; then
            log "pid $p ignored SIGTERM for 5 s; SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    local keep_pids=() q
    for q in "${started[@]}"; do
        for p in "$@"; do
            if [[ "$q" == "$p" ]]; then continue 2; fi
        done
        keep_pids+=("$q")
    done
    started=("${keep_pids[@]}")
}

# sleep that a trapped signal interrupts at once (bash runs traps only
# between foreground commands, but at once during `wait`).
nap_pid=""
nap() {
    sleep "$1" &
    nap_pid=$!
    wait "$nap_pid"
    nap_pid=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$nap_pid" ]]; then kill "$nap_pid" 2>/dev/null || true; fi
    if ((${#started[@]})); then stop_pids "${started[@]}"; fi
    if [[ -n "${tmp:-}" ]]; then
        if ((rc != 0 || keep)); then
            log "logs and raw samples kept in $tmp"
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$rc"
}

start_scratch() {
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/$bench_name.XXXXXX")"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ((${#tmp} < 80)) || die "temporary directory path $tmp is too long for unix socket paths"
    # The servers and the clients get private homes and runtime
    # directories; cargo needed the real HOME. Nothing from the caller's
    # libpulse environment may steer the clients.
    unset PULSE_SERVER PULSE_SINK PULSE_SOURCE PULSE_LOG PULSE_CLIENTCONFIG PULSE_COOKIE PULSE_PROP DISPLAY
    local d
    mkdir -m 700 "$tmp/home" "$tmp/run"
    for d in "$@"; do mkdir -m 700 "$tmp/$d"; done
    export HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp/run" XDG_CONFIG_HOME="$tmp/home/.config"
    # PulseAudio asks D-Bus for a session bus; there is none to find.
    export DBUS_SESSION_BUS_ADDRESS="disabled:"
}

# Waits (at most 20 s) until `pactl info` gets an answer from $2.
wait_ready() {
    local name="$1" spec="$2" pid="$3" logf="$4" deadline=$((SECONDS + 20))
    until PULSE_SERVER="$spec" timeout 5 pactl info >/dev/null 2>&1; do
        if ! alive "$pid"; then
            tail -n 20 "$logf" >&2 || true
            die "$name exited during start-up (log: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "$name did not answer on $spec within 20 s (log: $logf)"
        fi
        sleep 0.2
    done
}

# --------------------------------------------------------------- PulseAudio
# In per-user mode with no default script: only the two modules loaded
# here (a float32le 48 kHz stereo null sink, like srbd's sink, and the
# native protocol on $1). As root it prints a warning ("not intended to be
# run as root") and carries on; its runtime and state directories are the
# private XDG_RUNTIME_DIR and HOME of start_scratch. Unless $3 is 1 it runs
# with --high-priority=no --realtime=no, at the same nice 0 / SCHED_OTHER
# as srbd.
start_pulseaudio() {
    local sock="$1" logf="$2" default_priority="$3"
    pa_cmd=(pulseaudio -n --daemonize=no --system=no --exit-idle-time=-1 --use-pid-file=no
        --disable-shm=no -F /dev/null --log-target=stderr)
    if ((!default_priority)); then
        pa_cmd+=(--high-priority=no --realtime=no)
    fi
    pa_cmd+=("--load=module-null-sink sink_name=null format=float32le rate=48000 channels=2"
        "--load=module-native-protocol-unix socket=$sock auth-anonymous=1")
    log "starting: ${pa_cmd[*]}"
    "${pa_cmd[@]}" >"$logf" 2>&1 &
    pa_pid=$!
    started+=("$pa_pid")
}

# pa_cmd as one line a shell can paste (arguments with spaces quoted).
pa_cmd_shown() {
    local a shown=""
    for a in "${pa_cmd[@]}"; do
        if [[ "$a" == *" "* ]]; then a="\"$a\""; fi
        shown="${shown:+$shown }$a"
    done
    echo "$shown"
}

# "a/b" to two decimals and a ×, or n/a when b is not positive.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f×", a/b; else printf "n/a" }'; }

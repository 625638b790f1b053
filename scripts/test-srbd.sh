#!/usr/bin/env bash
# End-to-end tests of srbd against Debian's real pactl, pacat, paplay and
# parec (pulseaudio-utils): queries, streams, and hostile raw clients.
# Installs pulseaudio-utils when pactl is missing (needs root, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pactl >/dev/null 2>&1; then
    echo "test-srbd: pactl missing; installing pulseaudio-utils" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pulseaudio-utils
fi

cargo test -p srbd --test srbd_e2e --test srbd_streams --test srbd_hostile --test srbd_dsp --test srbd_scale --test srbd_find --test dsp_sim "$@"

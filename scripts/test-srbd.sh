#!/usr/bin/env bash
# End-to-end tests of srbd against Debian's real pactl, pacat, paplay and
# parec (pulseaudio-utils), GStreamer's pulsesink and libpulse itself (dlopen, srbd_record): queries, streams, and
# hostile raw clients.
# Installs pulseaudio-utils when pactl is missing (needs root, as in CI).
# The ALSA device tests (alsa_device) need libasound2-dev to build srbd,
# alsa-lib's plugins (libasound2-plugins: the `pulse` plugin) and a private
# PulseAudio (pulseaudio) as a device that vanishes and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s libasound2-dev libasound2-plugins pulseaudio >/dev/null 2>&1; then
    echo "test-srbd: installing libasound2-dev, libasound2-plugins, pulseaudio" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libasound2-dev libasound2-plugins pulseaudio
fi

if ! command -v pactl >/dev/null 2>&1 || ! command -v gst-launch-1.0 >/dev/null 2>&1; then
    echo "test-srbd: installing pulseaudio-utils and GStreamer (gst-launch-1.0, pulsesink)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pulseaudio-utils \
        gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-pulseaudio
fi

cargo test -p srbd --test srbd_e2e --test srbd_streams --test srbd_samples --test srbd_record --test srbd_hostile --test srbd_dsp --test srbd_scale --test srbd_find --test srbd_gst --test dsp_sim --test mixer_alloc --test srbd_state_page --test srbd_board_peer --test alsa_device --test srbd_alsa --test srbd_modules "$@"

#!/usr/bin/env bash
# The main job on a fresh machine: builds srbd (release) and runs it in the
# foreground on its embedded defaults (standard socket, DSP peer, the first
# real sound card or the null sink). Arguments go to srbd.
#
# srbd links alsa-lib, so the build needs its headers (Debian's
# libasound2-dev); this installs them when missing (as root), else says how.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pkg-config --exists alsa 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "srbd.sh: installing libasound2-dev (alsa-lib headers, needed to build srbd)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libasound2-dev pkg-config
  else
    echo "srbd.sh: srbd needs alsa-lib's headers to build: sudo apt-get install libasound2-dev pkg-config" >&2
    exit 1
  fi
fi
cargo build --release -p srbd --bins
exec target/release/srbd "$@"

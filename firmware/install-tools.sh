#!/usr/bin/env bash
# Installs what running the firmware under QEMU needs, if missing: QEMU 10 (qemu-system-arm,
# qemu-system-riscv32) from Debian bookworm-backports — bookworm's own QEMU 7.2 conflicts with
# the backports qemu-utils these machines carry —, defmt-print, and the Rust targets.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add thumbv7em-none-eabihf thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf \
    riscv32imafc-unknown-none-elf

if ! command -v qemu-system-arm >/dev/null || ! command -v qemu-system-riscv32 >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        $sudo tee /etc/apt/sources.list.d/backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        qemu-system-arm/bookworm-backports qemu-system-riscv/bookworm-backports \
        qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports \
        opensbi/bookworm-backports
fi
command -v defmt-print >/dev/null || cargo install defmt-print --locked --version 1.2.0

qemu-system-arm --version | head -1
qemu-system-riscv32 --version | head -1
defmt-print --version

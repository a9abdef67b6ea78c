#!/bin/sh
# Create the sparse disk and pmem images that configs/default.conf uses, if absent.
set -eu
B=${1:-build}
mkdir -p "$B"
[ -e "$B/disk.img" ] || truncate -s 64M "$B/disk.img"
[ -e "$B/pmem.img" ] || truncate -s 64M "$B/pmem.img"

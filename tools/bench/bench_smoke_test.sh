#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark in its short mode (one size, three rounds, two pairs), as a
# TAP test: it must run, and both drivers must move the same device state
# (virtio-rs-bench stops with an error otherwise). Numbers from the test
# kernel are not figures: make bench measures on the release-style kernel.
echo "TAP version 13"
echo "1..1"
if ! command -v virtio-rs-bench >/dev/null; then
	echo "ok 1 bench.short_mode # SKIP virtio-rs-bench not installed"
	exit 4
fi
if virtio-rs-bench -r 3 -s 64 -p 2 -b 64 | sed 's/^/# /'; then
	echo "ok 1 bench.short_mode"
else
	echo "not ok 1 bench.short_mode"
	exit 1
fi

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# These selftests run under the kernel's own runner, as any kselftest:
# /kselftest holds the 7.3 tree's run_kselftest.sh and kselftest/ helpers,
# the list this directory's lib.mk emits (make emit_tests), and this
# directory at drivers/vfio/virtio_rs (tools/vm/build). Runs one collection
# entry, harness_test, through run_kselftest.sh and checks the runner's
# TAP: the entry listed, run, passed.
base=${KSELFTEST_DIR:-/kselftest}
entry=drivers/vfio/virtio_rs:harness_test
echo "TAP version 13"
echo "1..2"
if [ ! -x "$base/run_kselftest.sh" ]; then
	echo "ok 1 kselftest.listed # SKIP no run_kselftest.sh in $base"
	echo "ok 2 kselftest.runs # SKIP no run_kselftest.sh in $base"
	exit 4
fi
if "$base/run_kselftest.sh" -l | grep -qx "$entry"; then
	echo "ok 1 kselftest.listed"
else
	echo "not ok 1 kselftest.listed # $entry not in run_kselftest.sh -l"
	rc=1
fi
out=$("$base/run_kselftest.sh" -t "$entry" 2>&1)
st=$?
echo "$out" | sed 's/^/# /'
if [ $st = 0 ] && echo "$out" | grep -q "^ok 1 selftests: drivers/vfio/virtio_rs: harness_test$"; then
	echo "ok 2 kselftest.runs"
else
	echo "not ok 2 kselftest.runs # run_kselftest.sh exit $st"
	rc=1
fi
exit ${rc:-0}

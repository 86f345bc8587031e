#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run the upstream vfio selftests of the 7.3 tree (tools/testing/selftests/
# vfio, installed in /upstream-vfio-selftests by tools/vm/build) against a
# VF bound to stock vfio-pci and against the same VF bound to
# virtio_vfio_pci_rs. One TAP result per upstream test program: ok when
# both drivers give the same pass/fail/skip totals and exit status.
# (vfio_pci_sriov_uapi_test needs the PF on vfio-pci, which would destroy
# the VFs of the test VM; it is not run.)

dir=/upstream-vfio-selftests
tests="vfio_pci_device_test vfio_iommufd_setup_test vfio_dma_mapping_test vfio_dma_mapping_mmio_test vfio_pci_driver_test"
n=$(echo $tests | wc -w)
echo "TAP version 13"
echo "1..$n"

pfsh=$(dirname "$0")/virtio_rs_pf.sh
[ -x "$pfsh" ] || pfsh=virtio_rs_pf.sh
pf=$($pfsh) && pf=/sys/bus/pci/devices/$pf && [ "$(cat $pf/sriov_numvfs)" -gt 1 ] || pf=
if [ -z "$pf" ] || [ ! -d $dir ]; then
	i=0
	for t in $tests; do i=$((i + 1)); echo "ok $i upstream.$t # SKIP no VF or no upstream selftests"; done
	exit 4
fi
vf=$(basename "$(readlink $pf/virtfn1)")
modprobe virtio_vfio_pci_rs

bind() {
	cur=$(basename "$(readlink /sys/bus/pci/devices/$vf/driver 2>/dev/null)" 2>/dev/null)
	[ -n "$cur" ] && echo $vf >/sys/bus/pci/drivers/$cur/unbind
	echo "$1" >/sys/bus/pci/devices/$vf/driver_override
	[ -n "$1" ] && echo $vf >/sys/bus/pci/drivers_probe
}

totals() {	# driver test -> "exit=N pass:.. fail:.. xfail:.. xpass:.. skip:.. error:.."
	out=/tmp/upstream.$1.$2
	VFIO_SELFTESTS_BDF=$vf timeout 600 $dir/$2 >$out 2>&1
	st=$?
	echo "exit=$st $(sed -n 's/^# Totals: //p' $out | tail -n1)"
}

for drv in vfio-pci virtio_vfio_pci_rs; do
	bind $drv
	for t in $tests; do
		totals $drv $t >/tmp/result.$drv.$t
	done
done
bind ""

i=0 rc=0
for t in $tests; do
	i=$((i + 1))
	a=$(cat /tmp/result.vfio-pci.$t)
	b=$(cat /tmp/result.virtio_vfio_pci_rs.$t)
	echo "# $t: vfio-pci [$a] virtio_vfio_pci_rs [$b]"
	if [ "$a" = "$b" ] && [ -n "$a" ]; then
		echo "ok $i upstream.$t"
	else
		echo "not ok $i upstream.$t"
		sed 's/^/#   rs: /' /tmp/upstream.virtio_vfio_pci_rs.$t | grep -E 'FAIL|not ok|error' | head -n 10
		rc=1
	fi
done
exit $rc

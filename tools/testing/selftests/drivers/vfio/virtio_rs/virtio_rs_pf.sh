#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Print the PCI address of the first virtio-net PF with SR-IOV capability
# (1af4:1041 with sriov_totalvfs > 0); exit 1 when there is none. The one
# place the VM's scripts find the PF (lib/virtio_rs_test.c does the same
# for the C tests).

for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1041 ] &&
		[ -e "$d/sriov_totalvfs" ] && [ "$(cat "$d/sriov_totalvfs")" -gt 0 ] &&
		{ echo "${d##*/}"; exit 0; }
done
exit 1

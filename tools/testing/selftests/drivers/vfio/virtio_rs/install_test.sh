#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The module as a user installs it: tools/vm/build runs `make install
# KDIR=... INSTALL_MOD_PATH=...` (modules_install into updates/, depmod) to
# fill the VM's module tree. Checks, with kmod's tools (through the
# toolchain sysroot): the module sits under updates/, modules.dep and
# modules.alias name it, modprobe --show-depends resolves it, and the
# vfio_pci: alias of a virtio-net VF resolves to it; modinfo reads this
# kernel's vermagic and the aliases from the installed file.
rel=$(uname -r)
dir=/lib/modules/$rel
ko=updates/drivers/vfio/pci/virtio_rs/virtio_vfio_pci_rs.ko
echo "TAP version 13"
echo "1..5"
if [ ! -x /sysroot/usr/sbin/modprobe ]; then
	for i in 1 2 3 4 5; do echo "ok $i install.$i # SKIP no kmod modprobe (needs the VM's --sysroot)"; done
	exit 4
fi
# kmod runs in the sysroot; it sees this VM's module tree under /tmp/kmod
# (mounted inside the sysroot: its /tmp is a bind of this /tmp, and later
# mounts under this /tmp do not propagate into it).
mkdir -p /sysroot/tmp/kmod/lib/modules
mount --bind /lib/modules /sysroot/tmp/kmod/lib/modules
modprobe="chroot /sysroot /usr/sbin/modprobe -d /tmp/kmod -S $rel"
rc=0
check() { # n name condition...
	n=$1 name=$2
	shift 2
	if "$@" >/dev/null 2>&1; then
		echo "ok $n install.$name"
	else
		echo "not ok $n install.$name"
		rc=1
	fi
}
check 1 in_updates test -f "$dir/$ko"
check 2 indexed grep -q "^$ko:" "$dir/modules.dep"
check 3 show_depends sh -c "$modprobe --show-depends virtio_vfio_pci_rs | grep -q 'insmod /tmp/kmod$dir/$ko'"
# A virtio-net VF's modalias, as the PCI core writes it.
alias=vfio_pci:v00001AF4d00001041sv00001AF4sd00000001bc02sc00i00
check 4 alias_resolves sh -c "$modprobe --resolve-alias $alias | grep -qx virtio_vfio_pci_rs"
modinfo="chroot /sysroot /usr/sbin/modinfo -b /tmp/kmod -k $rel"
check 5 modinfo sh -c "$modinfo -F vermagic virtio_vfio_pci_rs | grep -q '^$rel ' &&
	$modinfo -F alias virtio_vfio_pci_rs | grep -qx 'vfio_pci:v00001AF4d00001041sv\*sd\*bc\*sc\*i\*'"
umount /sysroot/tmp/kmod/lib/modules
exit $rc

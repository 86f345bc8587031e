# SPDX-License-Identifier: GPL-2.0
#
# User entry points (see README.md). The kernel's build system reads Kbuild,
# not this file, when it builds the module with M=<this directory>.

.PHONY: all run check bench setup kernel vm modules install uninstall hw-check-tools fuzz clean help

all: vm

## make run     - the demo: boot the test VM, bind two VFs, migrate one into the other
##                 (by hand through the uAPI, then with QEMU as the client)
run:
	@tools/demo

## make check   - everything: toolchain, kernel, host tests, VM tests
check:
	@tools/check

## make bench   - our driver against upstream's on a release-style kernel: the table
bench:
	@tools/bench/run

## make setup   - only create the toolchain chroot
setup:
	@tools/env/setup

## make kernel  - only build the test kernel
kernel:
	@tools/kernel/build

## make vm      - kernel + modules + selftests + initramfs
vm:
	@tools/vm/build

## make modules - build the module against a kernel build tree: KDIR=<tree>
##                 (default: the running kernel's, /lib/modules/$(uname -r)/build),
##                 with that kernel's options (LLVM=1, set by itself for a clang-built
##                 kernel);
##                 checks the tree and the toolchain first (tools/kernel/check-kdir)
KDIR ?= /lib/modules/$(shell uname -r)/build
RUSTC ?= rustc
BINDGEN ?= bindgen
# A clang-built kernel (CONFIG_CC_IS_CLANG) builds its modules with LLVM=1.
LLVM ?= $(if $(shell grep -s '^CONFIG_CC_IS_CLANG=y' "$(KDIR)/.config"),1)
kmake = $(MAKE) -C "$(KDIR)" M="$(CURDIR)" $(if $(LLVM),LLVM="$(LLVM)")
modules:
	@tools/kernel/check-kdir "$(KDIR)" "$(RUSTC)" "$(BINDGEN)"
	$(kmake) RUSTC="$(RUSTC)" BINDGEN="$(BINDGEN)" modules

## make install - make modules, then install them into that kernel's module tree
##                 (INSTALL_MOD_PATH=<root> for a staging root; INSTALL_MOD_DIR,
##                 default updates) and index it (depmod), so that modprobe and
##                 the vfio_pci: aliases find the driver
## make uninstall - remove what make install put there (same variables), re-index
INSTALL_MOD_DIR ?= updates
kernelrelease = $(shell cat "$(KDIR)/include/config/kernel.release" 2>/dev/null)
moddir = $(INSTALL_MOD_PATH)/lib/modules/$(kernelrelease)/$(INSTALL_MOD_DIR)
# A distribution's build tree usually has no System.map, and then
# modules_install skips depmod: run it in any case.
depmod = PATH="$$PATH:/sbin:/usr/sbin" depmod -a $(if $(INSTALL_MOD_PATH),-b "$(INSTALL_MOD_PATH)") "$(kernelrelease)"
install: modules
	$(kmake) INSTALL_MOD_DIR="$(INSTALL_MOD_DIR)" modules_install
	$(depmod)

uninstall:
	@test -n "$(kernelrelease)" || { echo "error: KDIR=$(KDIR): no include/config/kernel.release: which kernel's modules to remove?" >&2; exit 1; }
	rm -f "$(moddir)/drivers/vfio/pci/virtio_rs/virtio_vfio_pci_rs.ko" \
		"$(moddir)/tools/sim/virtio_rs_sim.ko"
	-rmdir -p "$(moddir)/drivers/vfio/pci/virtio_rs" "$(moddir)/tools/sim" 2>/dev/null
	$(depmod)

## make hw-check-tools - build what tools/hw-check runs: vfio_migration_test and the
##                 kernel's vfio selftests, from a kernel source tree of 7.3 or later
##                 (KSRC, default: the source of KDIR) with uAPI headers of 7.3 or
##                 later (KHDR_INCLUDES, default: KDIR's usr/include, else /usr/include),
##                 into HW_CHECK_OUT (default: build/hw-check)
KSRC ?= $(if $(wildcard $(KDIR)/source/tools/testing/selftests/vfio),$(KDIR)/source,$(KDIR))
KHDR_INCLUDES ?= -isystem $(if $(wildcard $(KDIR)/usr/include/linux/vfio.h),$(KDIR)/usr/include,/usr/include)
HW_CHECK_OUT ?= $(CURDIR)/build/hw-check
hw-check-tools:
	@test -f "$(KSRC)/tools/testing/selftests/vfio/lib/libvfio.mk" || { echo "error: KSRC=$(KSRC): no tools/testing/selftests/vfio/lib (Linux 7.3 or later)" >&2; exit 1; }
	mkdir -p "$(HW_CHECK_OUT)"
	$(MAKE) -C "$(KSRC)/tools/testing/selftests/vfio" \
		-f "$(CURDIR)/tools/testing/selftests/vfio/migration.mk" -f Makefile \
		OUTPUT="$(HW_CHECK_OUT)" KHDR_INCLUDES="$(KHDR_INCLUDES)"

## make clean   - remove this repository's build outputs (not the cache)
clean:
	@git clean -fdX -q -- drivers include tools/testing 2>/dev/null || true

help:
	@sed -n 's/^## //p' Makefile

## make fuzz    - fuzz the resume parser and the part walker (FUZZ_SECONDS each, default 600)
fuzz:
	@tools/fuzz/run

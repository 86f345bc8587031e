# SPDX-License-Identifier: GPL-2.0
#
# Our own bindgen run, shared by the Kbuild files of this repository. The
# including Kbuild sets virtio_rs_bindgen_items (allowlist options) and
# adds a rule for its generated file that calls
# $(call if_changed_dep,virtio_rs_bindgen).
#
# The flags are the module's C flags without the GCC-only options clang does
# not know (the list of rust/Makefile's bindgen_skip_c_flags), plus the
# options rust/Makefile passes for kernel::bindings.

virtio_rs_bindgen_skip := -mno-fp-ret-in-387 -mpreferred-stack-boundary=% \
	-mskip-rax-setup -mindirect-branch=thunk-extern \
	-mindirect-branch-register -mfunction-return=thunk-extern \
	-mrecord-mcount -mindirect-branch-cs-prefix -mstack-protector-guard% \
	-fconserve-stack -falign-jumps=% -falign-loops=% \
	-femit-struct-debug-baseonly -fno-ipa-cp-clone -fno-ipa-sra \
	-fno-partial-inlining -fno-reorder-blocks -fno-allow-store-data-races \
	-fasan-shadow-offset=% -fzero-call-used-regs=% \
	-fno-stack-clash-protection -fno-inline-functions-called-once \
	-fsanitize=bounds-strict -fstrict-flex-arrays=% \
	-fmin-function-alignment=% -fzero-init-padding-bits=% \
	-fdiagnostics-show-context -fdiagnostics-show-context=% \
	--param=% --param asan-% -fno-isolate-erroneous-paths-dereference \
	-Wno-%

# The target triple bindgen's libclang parses for: the one rust/Makefile
# gives bindgen for kernel::bindings, by the kernel's SRCARCH (a kernel
# built with clang has it in c_flags already; one built with GCC does not).
virtio_rs_bindgen_triple_x86 := x86_64-linux-gnu
virtio_rs_bindgen_triple_arm64 := aarch64-linux-gnu
virtio_rs_bindgen_triple_arm := arm-linux-gnueabi
virtio_rs_bindgen_triple_loongarch := loongarch64-linux-gnusf
virtio_rs_bindgen_triple_s390 := s390x-linux-gnu
virtio_rs_bindgen_triple_riscv := riscv64-linux-gnu
virtio_rs_bindgen_triple_powerpc := $(if $(CONFIG_PPC64),powerpc64le-linux-gnu,powerpc-linux-gnu)
virtio_rs_bindgen_triple := $(virtio_rs_bindgen_triple_$(SRCARCH))
ifeq ($(virtio_rs_bindgen_triple),)
$(error virtio_vfio_pci_rs: no bindgen target known for ARCH=$(SRCARCH))
endif

virtio_rs_bindgen_cflags = $(filter-out $(virtio_rs_bindgen_skip),$(c_flags)) \
	-w --target=$(virtio_rs_bindgen_triple) -fno-builtin -D__BINDGEN__ -DMODULE

quiet_cmd_virtio_rs_bindgen = BINDGEN $@
      cmd_virtio_rs_bindgen = \
	$(BINDGEN) $< --rust-target 1.85 --use-core --with-derive-default \
		--ctypes-prefix ffi --no-layout-tests --no-debug '.*' \
		--enable-function-attribute-detection --no-recursive-allowlist \
		$(virtio_rs_bindgen_items) --depfile $(depfile) \
		-o $@ -- $(virtio_rs_bindgen_cflags)

// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of trace.h, and C wrappers for the Rust code (the
 * trace_*() functions are static inline). Prototypes in
 * include/virtio_rs_bindings.h.
 */
#include <virtio_rs_bindings.h>

#define CREATE_TRACE_POINTS
#include "trace.h"

bool virtio_rs_trace_on(void)
{
	return trace_virtio_rs_state_request_enabled() || trace_virtio_rs_arc_enabled() ||
	       trace_virtio_rs_admin_cmd_enabled() || trace_virtio_rs_session_enabled() ||
	       trace_virtio_rs_record_enabled() || trace_virtio_rs_precopy_query_enabled();
}

void virtio_rs_trace_state_request(struct pci_dev *pdev, u32 cur, u32 new)
{
	trace_virtio_rs_state_request(pdev, cur, new);
}

void virtio_rs_trace_arc(struct pci_dev *pdev, u32 from, u32 to, s64 ns, int ret)
{
	trace_virtio_rs_arc(pdev, from, to, ns, ret);
}

void virtio_rs_trace_admin_cmd(struct pci_dev *pdev, u16 opcode, u64 bytes, s64 ns, int ret)
{
	trace_virtio_rs_admin_cmd(pdev, opcode, bytes, ns, ret);
}

void virtio_rs_trace_session(struct pci_dev *pdev, bool saving, bool created)
{
	trace_virtio_rs_session(pdev, saving, created);
}

void virtio_rs_trace_record(struct pci_dev *pdev, bool saved, u64 size)
{
	trace_virtio_rs_record(pdev, saved, size);
}

void virtio_rs_trace_precopy_query(struct pci_dev *pdev, u32 decision, u64 initial, u64 dirty)
{
	trace_virtio_rs_precopy_query(pdev, decision, initial, dirty);
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of virtio_vfio_pci_rs (tracefs: events/virtio_vfio_pci_rs/).
 *
 * A Rust module out of the kernel tree cannot declare tracepoints with
 * kernel::tracepoint (the event header would have to be in the kernel's
 * bindings_helper.h), so the events are defined here, in C, and the Rust
 * code calls the small wrappers of trace.c (abstractions::trace).
 *
 * Every event names the VF (pci_name()). Durations are in nanoseconds,
 * results are 0 or a negative errno.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM virtio_vfio_pci_rs

#if !defined(_VIRTIO_RS_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _VIRTIO_RS_TRACE_H

#include <linux/pci.h>
#include <linux/tracepoint.h>

#define virtio_rs_show_state(s)						\
	__print_symbolic(s, { 0, "ERROR" }, { 1, "STOP" }, { 2, "RUNNING" },	\
			 { 3, "STOP_COPY" }, { 4, "RESUMING" },			\
			 { 5, "RUNNING_P2P" }, { 6, "PRE_COPY" },		\
			 { 7, "PRE_COPY_P2P" })

#define virtio_rs_show_opcode(o)					\
	__print_symbolic(o, { 0xa, "OBJ_CREATE" }, { 0xd, "OBJ_DESTROY" },	\
			 { 0xe, "PARTS_METADATA_GET" }, { 0xf, "PARTS_GET" },	\
			 { 0x10, "PARTS_SET" }, { 0x11, "MODE_SET" })

/* A VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE request, from the current state. */
TRACE_EVENT(virtio_rs_state_request,
	TP_PROTO(struct pci_dev *pdev, u32 cur, u32 new),
	TP_ARGS(pdev, cur, new),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(u32, cur)
		__field(u32, new)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->cur = cur;
		__entry->new = new;
	),
	TP_printk("%s %s -> %s", __get_str(dev), virtio_rs_show_state(__entry->cur),
		  virtio_rs_show_state(__entry->new))
);

/* One arc of a request, done (ret 0) or failed. */
TRACE_EVENT(virtio_rs_arc,
	TP_PROTO(struct pci_dev *pdev, u32 from, u32 to, s64 ns, int ret),
	TP_ARGS(pdev, from, to, ns, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(u32, from)
		__field(u32, to)
		__field(s64, ns)
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->from = from;
		__entry->to = to;
		__entry->ns = ns;
		__entry->ret = ret;
	),
	TP_printk("%s %s -> %s %lld ns ret %d", __get_str(dev),
		  virtio_rs_show_state(__entry->from), virtio_rs_show_state(__entry->to),
		  __entry->ns, __entry->ret)
);

/* One admin command, sent through the PF's admin queue. */
TRACE_EVENT(virtio_rs_admin_cmd,
	TP_PROTO(struct pci_dev *pdev, u16 opcode, u64 bytes, s64 ns, int ret),
	TP_ARGS(pdev, opcode, bytes, ns, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(u16, opcode)
		__field(u64, bytes)
		__field(s64, ns)
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->opcode = opcode;
		__entry->bytes = bytes;
		__entry->ns = ns;
		__entry->ret = ret;
	),
	TP_printk("%s %s %llu bytes %lld ns ret %d", __get_str(dev),
		  virtio_rs_show_opcode(__entry->opcode), __entry->bytes, __entry->ns,
		  __entry->ret)
);

/* A saving or resuming session was created or ended. */
TRACE_EVENT(virtio_rs_session,
	TP_PROTO(struct pci_dev *pdev, bool saving, bool created),
	TP_ARGS(pdev, saving, created),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(bool, saving)
		__field(bool, created)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->saving = saving;
		__entry->created = created;
	),
	TP_printk("%s %s session %s", __get_str(dev), __entry->saving ? "saving" : "resuming",
		  __entry->created ? "created" : "ended")
);

/* A device-data record was queued (saved) or loaded. */
TRACE_EVENT(virtio_rs_record,
	TP_PROTO(struct pci_dev *pdev, bool saved, u64 size),
	TP_ARGS(pdev, saved, size),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(bool, saved)
		__field(u64, size)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->saved = saved;
		__entry->size = size;
	),
	TP_printk("%s record %s, %llu bytes", __get_str(dev),
		  __entry->saved ? "saved" : "loaded", __entry->size)
);

/*
 * A VFIO_MIG_GET_PRECOPY_INFO: whether the device was read again (allowed)
 * or why not, and the bytes reported.
 */
#define VIRTIO_RS_PRECOPY_ALLOWED 0
#define VIRTIO_RS_PRECOPY_UNDRAINED 1
#define VIRTIO_RS_PRECOPY_COMPLETE 2
#define VIRTIO_RS_PRECOPY_CAP 3
#define VIRTIO_RS_PRECOPY_RATE 4
#define VIRTIO_RS_PRECOPY_BUDGET 5
TRACE_EVENT(virtio_rs_precopy_query,
	TP_PROTO(struct pci_dev *pdev, u32 decision, u64 initial, u64 dirty),
	TP_ARGS(pdev, decision, initial, dirty),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(u32, decision)
		__field(u64, initial)
		__field(u64, dirty)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->decision = decision;
		__entry->initial = initial;
		__entry->dirty = dirty;
	),
	TP_printk("%s %s, initial %llu dirty %llu", __get_str(dev),
		  __print_symbolic(__entry->decision, { 0, "read the device" },
				   { 1, "data still queued" }, { 2, "stream complete" },
				   { 3, "read cap reached" }, { 4, "rate limited" },
				   { 5, "device budget spent" }),
		  __entry->initial, __entry->dirty)
);

#endif /* _VIRTIO_RS_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers of the virtio_vfio_pci_rs selftests: sysfs access, finding
 * the virtio-net SR-IOV PF and its VFs, binding through driver_override, and
 * watching the kernel log for warnings while a test runs.
 */
#ifndef VIRTIO_RS_TEST_H
#define VIRTIO_RS_TEST_H

#include <stdbool.h>
#include <stddef.h>

#define VIRTIO_VENDOR_ID 0x1af4
#define VIRTIO_NET_DEVICE_ID 0x1041
#define VIRTIO_RS_DRIVER "virtio_vfio_pci_rs"
#define VIRTIO_C_DRIVER "virtio_vfio_pci"

#define PCI_DEVICES "/sys/bus/pci/devices"

/* Read a sysfs attribute into buf (trailing newline removed). 0 or -errno. */
int sysfs_read(const char *path, char *buf, size_t len);
/* Write a string to a sysfs attribute. 0 or -errno. */
int sysfs_write(const char *path, const char *val);
/* Read a numeric attribute (decimal or 0x hex). 0 or -errno. */
int sysfs_read_ul(const char *path, unsigned long *val);
/* printf-style path helpers writing into a static buffer. */
int dev_attr_read(const char *bdf, const char *attr, char *buf, size_t len);
int dev_attr_write(const char *bdf, const char *attr, const char *val);
int dev_attr_ul(const char *bdf, const char *attr, unsigned long *val);

/* The first virtio-net PF with SR-IOV capability. 0 or -ENODEV. */
int find_sriov_pf(char *bdf, size_t len);
/* Name of VF number idx (0-based) of the PF. 0 or -ENOENT. */
int pf_vf_bdf(const char *pf, int idx, char *bdf, size_t len);
/* Driver bound to bdf ("" when none). */
int dev_driver(const char *bdf, char *drv, size_t len);
/* IOMMU group number of bdf, or -errno. */
int dev_iommu_group(const char *bdf);
/* Name of the vfio cdev of bdf ("vfioN"), 0 or -ENOENT. */
int dev_vfio_cdev(const char *bdf, char *name, size_t len);

/*
 * Bind bdf to driver through driver_override + drivers_probe and check the
 * result; unbind it from whatever driver it has and clear the override.
 */
int bind_driver_override(const char *bdf, const char *driver);
int unbind_and_clear(const char *bdf);

/* Load/unload a module with modprobe. Return the command's exit status. */
int modprobe(const char *module);
int modprobe_remove(const char *module);
bool module_loaded(const char *module);

/*
 * Kernel log watch: open /dev/kmsg positioned at its end; later collect what
 * was logged since and count lines that mark kernel bugs (WARNING:, BUG:,
 * lockdep, KASAN, KFENCE, UBSAN, SLUB corruption, Oops). kmsg_find() looks
 * for a substring in the new records.
 */
struct kmsg_watch {
	int fd;
	char *text;
	size_t len;
};
int kmsg_watch_start(struct kmsg_watch *w);
int kmsg_watch_collect(struct kmsg_watch *w);
int kmsg_bug_lines(const struct kmsg_watch *w, char *first, size_t len);
/* The number of markers, and whether marker i matches line (1/0/-errno). */
int kmsg_bug_markers(void);
int kmsg_marker_matches(int i, const char *line);
bool kmsg_find(const struct kmsg_watch *w, const char *needle);
void kmsg_watch_stop(struct kmsg_watch *w);

#endif

#ifndef VIRTIO_RS_TEST_H_KMEMLEAK
#define VIRTIO_RS_TEST_H_KMEMLEAK
/*
 * kmemleak: wait for objects to age past kmemleak's minimum (5 s), scan,
 * and return the number of suspected leaks (0 when kmemleak is absent:
 * *available says which). Clears the report afterwards.
 */
int kmemleak_new_leaks(bool *available, char *first, size_t len);
/* A non-virtio, non-bridge PCI device without a driver, or -ENODEV. */
int find_plain_pci_device(char *bdf, size_t len);
/* Run a shell command, return its exit status and the first output line. */
int run_cmd(const char *cmd, char *out, size_t len);
/*
 * Reload virtio_vfio_pci_rs with module parameters `params` ("" for the
 * defaults). No device may be bound to it. 0, -EBUSY or modprobe's status.
 */
int rs_reload(const char *params);
/* A counter of our driver's debugfs stats file of VF bdf, or -1. */
long drv_stat(const char *bdf, const char *name);
/*
 * A device's driver and driver_override, saved before a test rebinds it and
 * restored afterwards (unbound and without override when both were empty).
 */
struct dev_binding {
	char driver[64];
	char override[64];
};
int dev_binding_save(const char *bdf, struct dev_binding *b);
int dev_binding_restore(const char *bdf, const struct dev_binding *b);
#endif

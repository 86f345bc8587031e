// SPDX-License-Identifier: GPL-2.0
/*
 * Harness tests: the test VM has what every other test relies on.
 *
 *  harness_sriov_vfs_present   the virtio-net PF is there and its VFs
 *                              (1af4:1041) are enabled and enumerated
 *  harness_module_loads        virtio_vfio_pci_rs loads and unloads without
 *                              kernel warnings, and its bindgen layout check
 *                              passed
 *  harness_vf_binds_vfio_pci   a VF binds to stock vfio-pci through
 *                              driver_override; its VFIO group and iommufd
 *                              cdev appear and open
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "virtio_rs_test.h"

TEST(harness_sriov_vfs_present)
{
	unsigned long total, num, vendor, device;
	char pf[32], vf[32];

	ASSERT_EQ(0, find_sriov_pf(pf, sizeof(pf)))
		TH_LOG("no virtio-net PF with SR-IOV capability");
	ASSERT_EQ(0, dev_attr_ul(pf, "sriov_totalvfs", &total));
	ASSERT_EQ(0, dev_attr_ul(pf, "sriov_numvfs", &num));
	TH_LOG("PF %s: %lu of %lu VFs enabled", pf, num, total);
	ASSERT_GE(total, 4);
	ASSERT_EQ(num, total) TH_LOG("the VM init enables every VF");

	for (unsigned long i = 0; i < num; i++) {
		ASSERT_EQ(0, pf_vf_bdf(pf, i, vf, sizeof(vf)));
		ASSERT_EQ(0, dev_attr_ul(vf, "vendor", &vendor));
		ASSERT_EQ(0, dev_attr_ul(vf, "device", &device));
		EXPECT_EQ(VIRTIO_VENDOR_ID, vendor) TH_LOG("VF %s", vf);
		EXPECT_EQ(VIRTIO_NET_DEVICE_ID, device) TH_LOG("VF %s", vf);
		EXPECT_GE(dev_iommu_group(vf), 0) TH_LOG("VF %s has no IOMMU group", vf);
	}
}

TEST(harness_module_loads)
{
	struct kmsg_watch w;
	char bug[256];

	if (module_loaded(VIRTIO_RS_DRIVER))
		ASSERT_EQ(0, modprobe_remove(VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, kmsg_watch_start(&w));

	ASSERT_EQ(0, modprobe(VIRTIO_RS_DRIVER));
	ASSERT_TRUE(module_loaded(VIRTIO_RS_DRIVER));
	ASSERT_EQ(0, modprobe_remove(VIRTIO_RS_DRIVER));
	ASSERT_FALSE(module_loaded(VIRTIO_RS_DRIVER));

	ASSERT_EQ(0, kmsg_watch_collect(&w));
	EXPECT_TRUE(kmsg_find(&w, VIRTIO_RS_DRIVER ": loaded"))
		TH_LOG("no load message from the module");
	/* The layout check passed: a mismatch refuses the load (above). */
	EXPECT_TRUE(kmsg_find(&w, VIRTIO_RS_DRIVER ": unloaded"));
	EXPECT_EQ(0, kmsg_bug_lines(&w, bug, sizeof(bug))) TH_LOG("%s", bug);
	kmsg_watch_stop(&w);
}

TEST(harness_vf_binds_vfio_pci)
{
	char pf[32], vf[32], cdev[32], path[128];
	struct kmsg_watch w;
	struct stat st;
	int group, fd;

	ASSERT_EQ(0, find_sriov_pf(pf, sizeof(pf)));
	ASSERT_EQ(0, pf_vf_bdf(pf, 0, vf, sizeof(vf)));
	ASSERT_EQ(0, kmsg_watch_start(&w));

	ASSERT_EQ(0, bind_driver_override(vf, "vfio-pci"))
		TH_LOG("VF %s did not bind to vfio-pci", vf);

	group = dev_iommu_group(vf);
	ASSERT_GE(group, 0);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s missing", path);
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	fd = open(path, O_RDWR);
	EXPECT_GE(fd, 0) TH_LOG("open %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);

	ASSERT_EQ(0, dev_vfio_cdev(vf, cdev, sizeof(cdev)));
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", cdev);
	ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s missing", path);
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	fd = open(path, O_RDWR);
	EXPECT_GE(fd, 0) TH_LOG("open %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);

	EXPECT_EQ(0, unbind_and_clear(vf));
	ASSERT_EQ(0, kmsg_watch_collect(&w));
	EXPECT_EQ(0, kmsg_bug_lines(&w, NULL, 0));
	kmsg_watch_stop(&w);
}

/*
 * The kernel-bug markers: each finds its own sample report (the samples
 * file has one per marker, in the same order), and ordinary lines are no
 * report.
 */
TEST(harness_bug_markers)
{
	static const char *const samples[] = {
#include "bug_samples.h"
	};
	static const char *const good[] = {
		"virtio_vfio_pci_rs: loaded",
		"virtio_rs_sim: BUGS none here, debug on",
		"vfio-pci 0000:01:00.1: enabling device (0000 -> 0002)",
	};
	struct kmsg_watch w = { .fd = -1 };
	int n = kmsg_bug_markers();

	ASSERT_EQ(n, (int)(sizeof(samples) / sizeof(samples[0])))
		TH_LOG("one sample per marker");
	for (int i = 0; i < n; i++) {
		EXPECT_EQ(1, kmsg_marker_matches(i, samples[i]))
			TH_LOG("marker %d missed: %s", i, samples[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		w.text = (char *)good[i];
		w.len = strlen(good[i]);
		EXPECT_EQ(0, kmsg_bug_lines(&w, NULL, 0)) TH_LOG("false alarm: %s", good[i]);
	}
}

TEST_HARNESS_MAIN

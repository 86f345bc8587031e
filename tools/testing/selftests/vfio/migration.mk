# SPDX-License-Identifier: GPL-2.0
#
# Builds vfio_migration_test together with the vfio selftests of a kernel
# tree (7.3 or later) without changing the tree:
#
#   make -C <linux>/tools/testing/selftests/vfio -f <this file> -f Makefile \
#        KHDR_INCLUDES="-isystem <kernel build>/usr/include" OUTPUT=<dir>
#
# In a kernel tree, vfio_migration_test.c goes to tools/testing/selftests/vfio/
# and that directory's Makefile gains the TEST_GEN_PROGS line below.

TEST_GEN_PROGS += vfio_migration_test

vpath vfio_migration_test.c $(dir $(lastword $(MAKEFILE_LIST)))

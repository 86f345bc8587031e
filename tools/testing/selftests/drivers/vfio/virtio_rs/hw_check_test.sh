#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The hardware validation kit (tools/hw-check, in the VM's /bin) on two
# simulated VFs: the VFIO migration conformance suite on virtio_vfio_pci_rs
# and on upstream's virtio_vfio_pci, the vfio selftests, migrations across
# the two drivers. One TAP result per result of the kit; a check of
# upstream's driver that fails because of a bug the suite knows is XFAIL
# (the suite names the bug), an unexpected pass or an XFAIL of ours is a
# failure. Then: the kit's exit status, the report's sections, the VFs back
# on the driver they had.

pfsh=$(dirname "$0")/virtio_rs_pf.sh
[ -x "$pfsh" ] || pfsh=virtio_rs_pf.sh
pf=$($pfsh) && pf=/sys/bus/pci/devices/$pf && [ "$(cat $pf/sriov_numvfs)" -gt 1 ] || pf=
if [ -z "$pf" ] || ! command -v hw-check >/dev/null || [ ! -x /upstream-vfio-selftests/vfio_migration_test ]; then
	echo "TAP version 13"
	echo "1..1"
	echo "ok 1 hw_check # SKIP no VFs, no hw-check or no vfio_migration_test"
	exit 4
fi
vf1=$(basename "$(readlink $pf/virtfn0)")
vf2=$(basename "$(readlink $pf/virtfn1)")
state() {
	for b in $vf1 $vf2; do
		d=$(readlink /sys/bus/pci/devices/$b/driver)
		printf '%s=%s,%s ' $b "$(basename "${d:-none}")" "$(cat /sys/bus/pci/devices/$b/driver_override)"
	done
}
# VF1 starts on its host driver, as on a real host (VF2 on none): the
# kit must give each back to what it had.
echo virtio-pci >/sys/bus/pci/devices/$vf1/driver_override
echo $vf1 >/sys/bus/pci/drivers_probe 2>/dev/null
echo >/sys/bus/pci/devices/$vf1/driver_override
before=$(state)
report=/tmp/hw-check-report.txt
rm -f $report
t0=$(date +%s)
hw-check -o $report --bin /upstream-vfio-selftests $vf1 $vf2 >/tmp/hw-check.out 2>&1
st=$?
secs=$(($(date +%s) - t0))
after=$(state)
[ -e /sys/bus/pci/devices/$vf1/driver ] && echo $vf1 >/sys/bus/pci/devices/$vf1/driver/unbind

out=/tmp/hw-check.tap
: >$out
n=0 rc=0
tap() {	# ok|"not ok" name [directive]
	n=$((n + 1))
	echo "$1 $n $2${3:+ # $3}" >>$out
	[ "$1" = ok ] || rc=1
}
while read -r _ area name status; do
	t="$area.$name"
	case $status in
	PASS|WARN) tap ok "$t" ;;
	SKIP) tap ok "$t" SKIP ;;
	XFAIL)
		case $area in
		suite:virtio_vfio_pci) tap ok "$t" "XFAIL $(grep -m1 "$name # XFAIL" $report | sed 's/.*# XFAIL *//')" ;;
		*) tap "not ok" "$t" ;;
		esac ;;
	*) tap "not ok" "$t" ;;
	esac
done <<EOT
$(grep '^result: ' $report)
EOT
# The report and the kit itself.
fails=$(grep -c '^result: .* FAIL$' $report)
if { [ $st = 0 ] && [ "$fails" = 0 ]; } || { [ $st = 1 ] && [ "$fails" -gt 0 ]; }; then
	tap ok hw_check.exit_status
else
	tap "not ok" hw_check.exit_status
fi
missing=
for s in "== prerequisites ==" "== conformance suite: virtio_vfio_pci_rs ==" \
	"== vfio selftests on" "== conformance suite: virtio_vfio_pci ==" "== across drivers ==" \
	"== kernel log" "== results ==" "summary: "; do
	grep -q "^$s" $report || missing="$missing [$s]"
done
if [ -z "$missing" ]; then tap ok hw_check.report_sections; else tap "not ok" hw_check.report_sections; fi
case $before in
*"$vf1=virtio-pci,"*) ;;
*) echo "# $vf1 did not bind to virtio-pci before the kit: the restore to a driver is not shown" ;;
esac
if [ "$before" = "$after" ]; then tap ok hw_check.devices_given_back; else tap "not ok" hw_check.devices_given_back; fi

echo "TAP version 13"
echo "1..$n"
echo "# hw-check ran $secs s, exit $st; before: $before; after: $after"
[ -z "$missing" ] || echo "# report sections missing:$missing"
# The report, without the programs' logs: the host, the prerequisites,
# the selftests' results, the VFs given back, the results.
{
	sed -n '1,/^== vfio selftests on/p' $report | grep -v '^== vfio selftests on'
	grep -E '^(PASS|FAIL|SKIP|WARN) +selftests:' $report
	sed -n '/^== giving the devices back ==/,/^== machine-readable/p' $report | grep -v '^== machine'
} | sed 's/^/# /'
cat $out
[ $rc = 0 ] || { echo "# kit output:"; tail -n 40 /tmp/hw-check.out | sed 's/^/#   /'; }
exit $rc

# SPDX-License-Identifier: GPL-2.0
#
# Count the TAP results of `run-selftests` output (tools/vm/guest/run-selftests):
# prints shell assignments/commands that tools/check evaluates:
#   passed=$((passed+1))                    an "ok" result
#   skipped=...; echo "SKIP: name"          an "ok ... # SKIP" result
#   passed=...; echo "XFAIL: name: why"     an "ok ... # XFAIL" result
#   fail "binary: name (XPASS...)"          an "ok ... # XPASS" result
#   fail "binary: name"                     a "not ok" result
#   fail "binary: ..."                      a binary that crashed, did not
#                                           finish, or ran fewer tests than
#                                           its plan announced
# Only top-level TAP lines count; kselftest_harness's "#" lines are comments.

function flush() {
	if (bin == "")
		return
	if (code == "")
		printf "fail \"%s: did not finish\"\n", bin
	else {
		if (code != 0 && code != 4 && nok == 0)
			printf "fail \"%s: exited %s without reporting a failure\"\n", bin, code
		if (plan > seen)
			printf "fail \"%s: %d planned tests did not run\"\n", bin, plan - seen
	}
	bin = ""
}
/^# selftest: / { flush(); bin = $3; code = ""; plan = 0; seen = 0; nok = 0; next }
/^# exit: / { code = $4; next }
/^1\.\.[0-9]+/ { plan = substr($1, 4) + 0; next }
/^ok [0-9]+ / {
	seen++; name = $3; sub(/^global\./, "", name)
	if ($0 ~ /# SKIP/)
		printf "skipped=$((skipped+1)); echo \"SKIP: %s: %s\"\n", bin, name
	else if ($0 ~ /# XFAIL/) {
		# An expected failure passes; say which and why.
		reason = $0; sub(/.*# XFAIL */, "", reason); gsub(/["`$\\]/, "", reason)
		printf "passed=$((passed+1)); echo \"XFAIL: %s: %s: %s\"\n", bin, name, reason
	} else if ($0 ~ /# XPASS/) {
		printf "fail \"%s: %s (XPASS: a known failure did not happen)\"\n", bin, name
	} else
		printf "passed=$((passed+1))\n"
	next
}
/^not ok [0-9]+ / {
	seen++; nok++; name = $4; sub(/^global\./, "", name)
	printf "fail \"%s: %s\"\n", bin, name
	next
}
END { flush() }

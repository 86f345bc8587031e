# SPDX-License-Identifier: GPL-2.0
#
# Every `unsafe {` block of the Rust sources given must have its
# `// SAFETY:` comment directly above it: the line above (blank lines
# skipped) is a comment. Clippy's undocumented_unsafe_blocks also accepts a
# comment above the statement that contains the block, several lines up
# (`let x =` / `unsafe { ... }` after rustfmt wraps it); the project's rule
# is the stricter one. Prints file:line of each offender; exit 1 if any.
#
#   awk -f tools/lib/safety-comments.awk FILE...

FNR == 1 { prev = "" }
{
	line = $0
	sub(/^[ \t]+/, "", line)
	if (line !~ /^\/\// && line ~ /(^|[^A-Za-z0-9_])unsafe[ \t]*\{/ && prev !~ /^\/\//) {
		printf "%s:%d: %s\n", FILENAME, FNR, line
		bad++
	}
	if (line != "")
		prev = line
}
END { exit bad ? 1 : 0 }

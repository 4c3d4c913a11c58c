#!/bin/sh
# smoke.sh BUILDDIR SRCDIR TARGET... - run each libFuzzer target for
# FUZZ_SECONDS seconds (default 12) from its seed corpus (SRCDIR/corpus/T,
# read only) into a temporary corpus, with its dictionary (SRCDIR/T.dict).
# Fails on any crash, sanitizer report, leak or timeout; the failing input
# is kept as BUILDDIR/artifacts/T-crash-... (or -leak-, -timeout-).
# Reproducers of known core bugs in SRCDIR/crashes/ (if any) are replayed
# first and reported.  POP3D_FUZZ_SKIP_KNOWN_BUGS=1 (passed on to the
# targets) makes them steer clear of those bugs.
# `make fuzz-smoke` runs this; see README.md.
set -u

if [ $# -lt 3 ]; then
	echo "usage: $0 BUILDDIR SRCDIR TARGET..." >&2
	exit 2
fi
builddir=$1
srcdir=$2
shift 2
secs=${FUZZ_SECONDS:-12}
case $secs in
''|*[!0-9]*) echo "smoke.sh: FUZZ_SECONDS must be a number of seconds" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

# Leaks count as failures; reports go to stderr (the log below).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

fail=0
# Reproducers of known core bugs (SRCDIR/crashes/T-*): say whether each
# still fails; the fuzzing run below fails on it anyway while it does.
for t in "$@"; do
	for r in "$srcdir/crashes/$t"-*; do
		[ -f "$r" ] && [ -x "$builddir/$t" ] || continue
		if env -u POP3D_FUZZ_SKIP_KNOWN_BUGS "$builddir/$t" "$r" >"$tmp/replay.log" 2>&1; then
			echo "NOTE $t: $(basename "$r") passes now (bug fixed? remove it from crashes/)"
		else
			echo "KNOWN BUG $t: $(basename "$r") still fails"
		fi
	done
done
for t in "$@"; do
	bin=$builddir/$t
	if [ ! -x "$bin" ]; then
		echo "FAIL $t: $bin not built" >&2
		fail=1
		continue
	fi
	mkdir -p "$tmp/$t/corpus" "$tmp/$t/artifacts"
	set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$tmp/$t/artifacts/"
	[ -f "$srcdir/$t.dict" ] && set -- "$@" -dict="$srcdir/$t.dict"
	# The session target takes longer inputs (whole pipelined sessions).
	[ "$t" = fuzz_session ] && set -- "$@" -max_len=16384
	"$bin" "$@" "$tmp/$t/corpus" "$srcdir/corpus/$t" >"$tmp/$t.log" 2>&1
	rc=$?
	last=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$tmp/$t.log" | tail -n 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log")
	if [ $rc -ne 0 ] || [ -n "$(ls -A "$tmp/$t/artifacts")" ]; then
		echo "FAIL $t (exit $rc): $last"
		tail -n 60 "$tmp/$t.log"
		mkdir -p "$builddir/artifacts"
		for a in "$tmp/$t/artifacts"/*; do
			[ -f "$a" ] || continue
			cp "$a" "$builddir/artifacts/$t-$(basename "$a")"
			echo "  input kept: $builddir/artifacts/$t-$(basename "$a")"
		done
		fail=1
	else
		echo "PASS $t: ${execs:-?} runs in ${secs}s; $last"
	fi
done
exit $fail

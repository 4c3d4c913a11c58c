#!/bin/sh
# run.sh - build and run the pop3d benchmarks (docs/benchmarks.md).
#
#   tests/bench/run.sh [--builddir DIR] [--srcdir DIR] [--no-install] [bench.py options]
#   make bench [BENCH_ARGS='...']
#
# Builds pop3d and the benchmark programs (make bench-progs) unless called
# from make, installs Dovecot from Debian when it is missing and we are root
# (apt-get install -y dovecot-pop3d, without letting the package start the
# system service; --no-install skips this), then runs tests/bench/bench.py:
# every set-up and mode, repeated, the table printed and written into
# docs/benchmarks.md.  `tests/bench/bench.py --help` lists its options
# (--quick, --setups, --modes, --repeat, --duration, --no-write, ...).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=
install=1
cmd="tests/bench/run.sh $*"
while [ $# -gt 0 ]; do
	case "$1" in
	--builddir) builddir=$2; shift 2 ;;
	--srcdir) srcdir=$2; shift 2 ;;
	--no-install) install=0; shift ;;
	*) break ;;
	esac
done

if [ -z "$builddir" ]; then
	# Not from make: build what the benchmarks run.
	builddir=$srcdir
	make -C "$builddir" -s bench-progs
else
	cmd="make bench${BENCH_ARGS:+ BENCH_ARGS='$BENCH_ARGS'}"
fi

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ] && [ "$install" = 1 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "run.sh: installing Dovecot (apt-get install -y dovecot-pop3d)" >&2
		# The package must not start the system dovecot: the benchmarks
		# run their own instances with a private configuration.
		made_policy=0
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 755 /usr/sbin/policy-rc.d
			made_policy=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-pop3d >&2 ||
		    { apt-get update -q >&2 &&
		      DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-pop3d >&2; } ||
		    echo "run.sh: could not install Dovecot; its set-ups will be reported as not available" >&2
		[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	else
		echo "run.sh: dovecot is not installed (apt-get install -y dovecot-pop3d as root)" >&2
	fi
fi

PYTHON=${PYTHON:-python3}
BENCH_COMMAND=$cmd exec "$PYTHON" "$here/bench.py" --builddir "$builddir" --srcdir "$srcdir" "$@"

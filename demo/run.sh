#!/bin/sh
# demo/run.sh - pop3d on 127.0.0.1:1110 (control socket ./pop3d.sock) with the
# Python Maildir controller serving a temporary COPY of demo/ (the demo tree
# is never modified).  Stop with Ctrl-C.
#
# Environment: POP3D (default ./pop3d), POP3D_PORT (1110),
# POP3D_SOCK (./pop3d.sock), PYTHON (python3).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
POP3D=${POP3D:-./pop3d}
PORT=${POP3D_PORT:-1110}
SOCK=${POP3D_SOCK:-./pop3d.sock}
PYTHON=${PYTHON:-python3}

if [ ! -x "$POP3D" ]; then
	echo "demo/run.sh: $POP3D not found; build first (make)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-demo.XXXXXX")
pop3d_pid=
ctl_pid=
cleanup() {
	trap - INT TERM EXIT
	[ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null || true
	[ -n "$pop3d_pid" ] && kill "$pop3d_pid" 2>/dev/null || true
	[ -n "$ctl_pid" ] && wait "$ctl_pid" 2>/dev/null || true
	[ -n "$pop3d_pid" ] && wait "$pop3d_pid" 2>/dev/null || true
	rm -rf "$tmp"
	echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp -R "$here/maildir" "$tmp/maildir"
cp "$here/users" "$tmp/users"
chmod 600 "$tmp/users"
for u in "$tmp"/maildir/*; do
	mkdir -p "$u/new" "$u/cur" "$u/tmp"
done

"$POP3D" -f --address 127.0.0.1 --port "$PORT" --control "$SOCK" --no-greeting &
pop3d_pid=$!
i=0
while [ ! -S "$SOCK" ]; do
	i=$((i + 1))
	if [ $i -gt 50 ] || ! kill -0 "$pop3d_pid" 2>/dev/null; then
		echo "demo/run.sh: pop3d did not start" >&2
		exit 1
	fi
	sleep 0.1
done

PYTHONPATH="$here/../clients/python${PYTHONPATH:+:$PYTHONPATH}" \
	"$PYTHON" -m pop3d.maildir --socket "$SOCK" --users "$tmp/users" \
	--root "$tmp/maildir" --greeting --responder-lock "$tmp/responder.lock" -v \
	>"$tmp/controller.out" &
ctl_pid=$!
# pop3d runs with --no-greeting (the controller greets, with an APOP
# timestamp): wait until the controller serves before inviting clients.
i=0
until grep -q '^pop3d.maildir: serving' "$tmp/controller.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$ctl_pid" 2>/dev/null; then
		echo "demo/run.sh: the Maildir controller did not start" >&2
		exit 1
	fi
	sleep 0.1
done

cat <<INFO

pop3d demo: POP3 on 127.0.0.1:$PORT, control socket $SOCK
Maildir copy: $tmp/maildir   (demo/ itself is never modified)
Demo users and passwords (APOP secret = password):
    alice  wonderland
    bob    builder
Try:
    curl pop3://alice:wonderland@127.0.0.1:$PORT/1
    curl pop3://alice:wonderland@127.0.0.1:$PORT/
    curl -X 'TOP 2 0' pop3://bob:builder@127.0.0.1:$PORT/
    PYTHONPATH=$here/../clients/python $PYTHON -m pop3d.watch --socket $SOCK
Ctrl-C stops both.

INFO
wait "$ctl_pid" || true

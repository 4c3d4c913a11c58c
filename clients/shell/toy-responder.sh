#!/bin/sh
# toy-responder.sh - a complete toy POP3 service on top of pop3d, written as
# a pop3ctl(1) "listen --exec" handler: mailbox "alice", password
# "wonderland", two built-in messages.  Answers USER, PASS, STAT, LIST, RETR,
# DELE, RSET, NOOP, CAPA and QUIT; every other command gets -ERR.
#
# usage: POP3D_CONTROL=/run/pop3d/control.sock toy-responder.sh
#
# Runs until pop3d exits or it is killed.  pop3ctl runs this same script once
# per event (with --event); the event is in POP3D_* variables and whatever
# the script prints is the answer sent to the client: one line is a single
# response, several lines are one multi-line response (pop3d dot-stuffs it),
# and a last line "." ends a multi-line response (so that one with no body,
# like an empty LIST, can be told from a single line); nothing means no
# answer.  Events are handled
# one after another, so this serves one command at a time.
# Environment: POP3D_CONTROL (the socket), POP3CTL (the pop3ctl program).
set -u

if [ "${1:-}" != "--event" ]; then
	TOY_STATE=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-toy.XXXXXX") || exit 1
	TOY_SELF=$0
	export TOY_STATE TOY_SELF
	trap 'rm -rf "$TOY_STATE"' EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	# shellcheck disable=SC2016 # expanded by the shell that pop3ctl runs
	# --show-secrets: it checks the password, so it must see it.
	"${POP3CTL:-pop3ctl}" listen --show-secrets --exec 'exec sh "$TOY_SELF" --event' \
	    'cmd_*' disconnected
	exit $?
fi

# The mailbox: message N on stdout, or status 1 when there is none.
message() {
	case $1 in
	1) cat <<'EOF'
From: toy@example.org
To: alice@example.org
Subject: Welcome

Hello Alice, this message comes from a shell script.
.
The line above is a single dot; pop3d dot-stuffs it.
EOF
	;;
	2) cat <<'EOF'
From: toy@example.org
To: alice@example.org
Subject: Second message

Goodbye.
EOF
	;;
	*) return 1 ;;
	esac
}
COUNT=2

state=$TOY_STATE/client-${POP3D_CLIENT:-none}
arg=${POP3D_ARG1:-}

# Size in octets as the client sees it (CRLF line ends).
octets() {
	m=$(message "$1")
	echo $(( $(printf '%s\n' "$m" | wc -c) + $(printf '%s\n' "$m" | wc -l) ))
}

# Whether message N exists and is not marked deleted.
alive() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le "$COUNT" ] || return 1
	! grep -qx "$1" "$state.dele" 2>/dev/null
}

# Transaction-state commands need a login first.
case $POP3D_EVENT in
pop3d_cmd_stat | pop3d_cmd_list | pop3d_cmd_retr | pop3d_cmd_dele | pop3d_cmd_rset)
	if [ "${POP3D_STATE:-}" != transaction ]; then
		echo "-ERR log in first"
		exit 0
	fi ;;
esac

case $POP3D_EVENT in
pop3d_cmd_capa)
	printf '%s\n' "+OK capability list follows" USER . ;;
pop3d_cmd_user)
	if [ "$arg" = alice ]; then
		echo alice > "$state.user"
		echo "+OK alice, send your password"
	else
		echo "-ERR no such mailbox"
	fi ;;
pop3d_cmd_pass)
	if [ "$(cat "$state.user" 2>/dev/null)" = alice ] && [ "$arg" = wonderland ]; then
		echo "+OK mailbox ready"
	else
		echo "-ERR [AUTH] invalid user name or password"
	fi ;;
pop3d_cmd_stat)
	n=0 size=0 i=1
	while [ $i -le $COUNT ]; do
		if alive $i; then n=$((n + 1)) size=$((size + $(octets $i))); fi
		i=$((i + 1))
	done
	echo "+OK $n $size" ;;
pop3d_cmd_list)
	if [ -n "$arg" ]; then
		if alive "$arg"; then echo "+OK $arg $(octets "$arg")"
		else echo "-ERR no such message"; fi
	else
		echo "+OK scan listing follows"
		i=1
		while [ $i -le $COUNT ]; do
			if alive $i; then echo "$i $(octets $i)"; fi
			i=$((i + 1))
		done
		echo .
	fi ;;
pop3d_cmd_retr)
	if alive "$arg"; then
		echo "+OK $(octets "$arg") octets"
		message "$arg"
		echo .
	else
		echo "-ERR no such message"
	fi ;;
pop3d_cmd_dele)
	if alive "$arg"; then
		echo "$arg" >> "$state.dele"
		echo "+OK message $arg deleted"
	else
		echo "-ERR no such message"
	fi ;;
pop3d_cmd_rset)
	rm -f "$state.dele"
	echo "+OK" ;;
pop3d_cmd_noop)
	echo "+OK" ;;
pop3d_cmd_quit)
	rm -f "$state.user" "$state.dele"
	echo "+OK toy POP3 server signing off" ;;
pop3d_disconnected)
	rm -f "$state.user" "$state.dele" ;;
pop3d_cmd_*)
	echo "-ERR not supported by the toy responder" ;;
esac
exit 0

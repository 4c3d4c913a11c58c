#!/bin/sh
# kick-idle.sh - disconnect the POP3 clients that have been idle for longer
# than SECONDS, using "pop3ctl clients" and "pop3ctl disconnect".
#
# usage: POP3D_CONTROL=/run/pop3d/control.sock kick-idle.sh SECONDS [TEXT]
#
# TEXT (default "-ERR [SYS/TEMP] idle for too long") is sent to each client
# before it is closed.  Prints "disconnected client ID" for each.  Exit
# status: 0, 2 on a usage error, else pop3ctl's status.  Environment:
# POP3D_CONTROL (the socket), POP3CTL (the pop3ctl program).
set -u
POP3CTL=${POP3CTL:-pop3ctl}

case ${1:-} in
'' | *[!0-9]*)
	echo "usage: kick-idle.sh SECONDS [TEXT]" >&2
	exit 2 ;;
esac
limit=$1
text=${2:-"-ERR [SYS/TEMP] idle for too long"}

# Columns: ID PEER LOCAL STATE TLS IDLE (seconds); the first line is a header.
table=$("$POP3CTL" clients) || exit
status=0
for id in $(printf '%s\n' "$table" | awk -v limit="$limit" 'NR > 1 && $6 > limit + 0 { print $1 }'); do
	if "$POP3CTL" disconnect "$id" "$text"; then
		echo "disconnected client $id"
	else
		rc=$?
		[ $rc -eq 1 ] || status=$rc	# 1: gone meanwhile (unknown_client)
	fi
done
exit $status

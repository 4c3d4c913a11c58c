#!/bin/sh
# watch.sh - log every pop3d event (or the EVENT patterns given) as one line:
#   TIME EVENT client=ID ARG0 ARG1 ...
# from "pop3ctl listen --format text" in a while-read loop.
#
# usage: POP3D_CONTROL=/run/pop3d/control.sock watch.sh [EVENT ...]
#
# Registering for client commands (the default is every event) makes pop3d
# wait for an answer to them, which this script never gives: run it next to
# a controller that answers, or name only other events, for example
#   watch.sh connection disconnected
# Runs until pop3d exits (status 0) or it is killed.  Environment:
# POP3D_CONTROL (the socket), POP3CTL (the pop3ctl program).
set -u
POP3CTL=${POP3CTL:-pop3ctl}

"$POP3CTL" ping > /dev/null || exit		# unreachable: pop3ctl's status
tab=$(printf '\t')
"$POP3CTL" listen --format text "$@" |
while IFS=$tab read -r event client args; do
	printf '%s %s client=%s %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "${event#pop3d_}" \
	    "$client" "$(printf '%s' "$args" | tr '\t' ' ')"
done

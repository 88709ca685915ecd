#!/bin/sh
# A chat partner behind the process bridge (bridge.ExecHandler), for the
# gateway interop tests. It greets the client with what the bridge told it
# in CGI variables, then answers each line it reads on stdin:
#
#   bye   -> "bye after N messages", exit 0  (the bridge closes with 1000)
#   fail  -> "failing", exit 7               (the bridge closes with 1011 "exit status 7")
#   other -> "N: LINE" with ASCII letters in upper case
#
# It writes a line to stderr, which the bridge logs and never sends.
echo "chat.sh started" >&2
echo "hello $REMOTE_ADDR, you asked for $QUERY_STRING on $SCRIPT_NAME"
n=0
while IFS= read -r line; do
	n=$((n + 1))
	case "$line" in
	bye)
		echo "bye after $n messages"
		exit 0
		;;
	fail)
		echo "failing"
		exit 7
		;;
	*)
		echo "$n: $(printf '%s' "$line" | LC_ALL=C tr 'a-z' 'A-Z')"
		;;
	esac
done

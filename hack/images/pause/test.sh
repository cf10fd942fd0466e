# shellcheck shell=bash
in_image_bg /pause
wait_until "pause runs" kill -0 "$BG_PID"
sleep 0.2
stop "$BG_PID" || fail "pause exited $? on SIGTERM"

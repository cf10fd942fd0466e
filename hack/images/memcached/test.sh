# shellcheck shell=bash
# As the operator runs it.
in_image_bg memcached -m 64 -c 4096 -p 11211
wait_until "memcached stores and returns a key" python3 "$HELPERS/memcached_roundtrip.py" 127.0.0.1 11211
stop "$BG_PID" || true

# shellcheck shell=bash
in_image /coredns -version | grep -q CoreDNS || fail "coredns -version"
printf '.:1053 {\n    hosts {\n        10.1.2.3 probe.test\n    }\n}\n' > "$ROOT/tmp/Corefile"
in_image_bg /coredns -conf /tmp/Corefile
wait_until "coredns answers on port 1053 as uid $IMAGE_UID" python3 "$HELPERS/dns_query.py" 127.0.0.1 1053 probe.test 10.1.2.3
kill -TERM "$BG_PID"
wait "$BG_PID" || true

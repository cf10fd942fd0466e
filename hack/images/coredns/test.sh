# shellcheck shell=bash
[[ "$(in_image /coredns -version)" == *CoreDNS-1.14.7* ]] || fail "/coredns -version is not CoreDNS 1.14.7"
printf '.:1053 {\n    hosts {\n        10.1.2.3 probe.test\n    }\n}\n' > "$ROOT/tmp/Corefile"
in_image_bg /coredns -conf /tmp/Corefile
wait_until "coredns answers on port 1053 as uid $IMAGE_UID" python3 "$HELPERS/dns_query.py" 127.0.0.1 1053 probe.test 10.1.2.3
stop "$BG_PID" || true

# shellcheck shell=bash
# The VCL the operator generates, fronting a backend on 127.0.0.1:8000, run as the operator runs it.
mkdir -p "$ROOT/srv/backend"
echo "hello from the backend" > "$ROOT/srv/backend/index.html"
python3 -m http.server 8000 --bind 127.0.0.1 --directory "$ROOT/srv/backend" >/dev/null 2>&1 &
backend_pid=$!
printf 'vcl 4.1;\n\nimport xkey;\n\nbackend app {\n    .host = "127.0.0.1";\n    .port = "8000";\n}\n' \
  > "$ROOT/etc/varnish/default.vcl"
in_image varnishd -C -f /etc/varnish/default.vcl >/dev/null 2>&1 || fail "varnishd -C does not compile the VCL"
in_image_bg varnishd -F -f /etc/varnish/default.vcl -a :8080 -s malloc,64M
varnish_pid=$BG_PID
through_varnish() { curl -fsS -D - http://127.0.0.1:8080/ | grep -qi '^via:.*varnish'; }
wait_until "a page through varnish" through_varnish
curl -fsS http://127.0.0.1:8080/ | grep -q "hello from the backend" || fail "wrong page through varnish"
stop "$varnish_pid" || fail "varnishd exited $? on SIGTERM"
stop "$backend_pid" || true

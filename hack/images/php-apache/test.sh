# shellcheck shell=bash
modules=$(in_image php -m)
for module in pgsql pdo_pgsql mysqli pdo_mysql memcached redis; do
  grep -qx "$module" <<< "$modules" || fail "php module $module is missing"
done
in_image_bg apache2-foreground
apache_pid=$BG_PID
wait_until "apache answers on 127.0.0.1:8000" curl -fsS http://127.0.0.1:8000/
page=$(curl -fsS -D "$ROOT/tmp/headers" http://127.0.0.1:8000/)
[ "$page" = "$(hostname)" ] || fail "index.php answered '$page', not the hostname"
grep -qi "^X-Served-By: $(hostname)" "$ROOT/tmp/headers" || fail "no X-Served-By header"
kill -WINCH "$apache_pid"
wait "$apache_pid" || true

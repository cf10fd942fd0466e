# shellcheck shell=bash
modules=$(in_image php -m)
for module in pgsql pdo_pgsql mysqli pdo_mysql memcached redis; do
  grep -qx "$module" <<< "$modules" || fail "php module $module is missing"
done
# Apache reopens /proc/self/fd/1 and 2: runc hands a non-root container stdio
# owned by its user; a log file owned by the user does the same here.
install -o "$IMAGE_UID" -g "$IMAGE_GID" -m 0644 /dev/null "$ROOT/tmp/apache.log"
in_image_bg apache2-foreground >> "$ROOT/tmp/apache.log" 2>&1
apache_pid=$BG_PID
wait_until "apache answers on 127.0.0.1:8000" curl -fsS http://127.0.0.1:8000/
page=$(curl -fsS -D "$ROOT/tmp/headers" http://127.0.0.1:8000/)
[ "$page" = "$(hostname)" ] || fail "index.php answered '$page', not the hostname"
grep -qi "^X-Served-By: $(hostname)" "$ROOT/tmp/headers" || fail "no X-Served-By header"
stop "$apache_pid" WINCH || fail "apache exited $? on SIGWINCH"
grep -q '"GET / HTTP/1.1" 200' "$ROOT/tmp/apache.log" || fail "no access log line on stdout"

# shellcheck shell=bash
# The install root the example's commands expect, the configuration from the
# environment and /var/roundcube/config, and the login page from Apache with
# the X-Served-By header.
for path in index.php bin/updatedb.sh bin/cleandb.sh bin/gc.sh SQL/postgres.initial.sql; do
  in_image test -e "/var/www/html/$path" || fail "/var/www/html/$path is missing"
done
cat > "$ROOT/var/roundcube/config/extra.php" <<'PHP'
<?php
$config['product_name'] = 'included';
PHP
out=$(cd "$ROOT" && in_image ROUNDCUBEMAIL_DSNW=pgsql://u:p@db/rc ROUNDCUBEMAIL_DSNR=pgsql://u:p@ro/rc \
  ROUNDCUBEMAIL_DES_KEY=0123456789abcdefghijklmn ROUNDCUBEMAIL_DEFAULT_HOST=imap ROUNDCUBEMAIL_DEFAULT_PORT=1143 \
  ROUNDCUBEMAIL_SMTP_SERVER=smtp ROUNDCUBEMAIL_TEMP_DIR=/tmp/rc-temp \
  /docker-entrypoint.sh php -r '
define("INSTALL_PATH", "/var/www/html/");
require INSTALL_PATH . "program/include/iniset.php";
$c = rcube::get_instance()->config;
foreach (["db_dsnw", "db_dsnr", "des_key", "imap_host", "smtp_host", "temp_dir", "product_name", "session_storage"] as $k) {
    echo $k, "=", $c->get($k), "\n";
}')
expected="db_dsnw=pgsql://u:p@db/rc
db_dsnr=pgsql://u:p@ro/rc
des_key=0123456789abcdefghijklmn
imap_host=imap:1143
smtp_host=smtp:587
temp_dir=/tmp/rc-temp
product_name=included
session_storage=db"
[ "$out" = "$expected" ] || fail "configuration from the environment: got
$out"
[ -d "$ROOT/tmp/rc-temp" ] || fail "the entrypoint did not create the temp dir"
# No database here: Roundcube itself answers (its database error, 500), and
# Apache names the pod; the login page is the real-node test's.
install -o "$IMAGE_UID" -g "$IMAGE_GID" -m 0644 /dev/null "$ROOT/tmp/apache.log"
in_image_bg HOSTNAME=verify-pod ROUNDCUBEMAIL_DES_KEY=0123456789abcdefghijklmn /docker-entrypoint.sh apache2-foreground >> "$ROOT/tmp/apache.log" 2>&1
apache_pid=$BG_PID
wait_until "apache answers on 127.0.0.1:8000" curl -sS -o /dev/null http://127.0.0.1:8000/
code=$(curl -sS -D "$ROOT/tmp/headers" -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/)
[ "$code" = 500 ] || fail "without a database Roundcube answered $code, not 500"
grep -q 'rcube_db.php' "$ROOT/tmp/apache.log" || fail "no Roundcube database error in the log: $(tail -n 5 "$ROOT/tmp/apache.log")"
grep -qi '^X-Served-By: verify-pod' "$ROOT/tmp/headers" || fail "no X-Served-By header: $(cat "$ROOT/tmp/headers")"
code=$(curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/config/config.inc.php)
case "$code" in 403 | 404) ;; *) fail "config/config.inc.php answered $code (it is outside the document root)" ;; esac
stop "$apache_pid" WINCH || fail "apache exited $? on SIGWINCH"

# shellcheck shell=sh
# Debian's install root is /var/lib/roundcube (its bin/ scripts say so);
# /var/www/html leads there (relative: images.sh resolves DIRS on the host),
# with bin/ beside SQL/ as in the upstream tree.
ln -sfn /usr/share/roundcube/bin /var/lib/roundcube/bin
rm -rf /var/www/html
ln -s ../lib/roundcube /var/www/html
# dbconfig-common's include (it found no database at install time): the
# database comes from ROUNDCUBEMAIL_DSNW instead.
rm -f /etc/roundcube/debian-db.php /etc/roundcube/debian-db-roundcube.php /etc/dbconfig-common/roundcube.conf
chmod 0644 /etc/roundcube/config.inc.php
# Served from public_html (Roundcube's own recommendation), so config/,
# temp/ and logs/ are not under the document root. X-Served-By names the pod
# that answered (the test tells replicas apart by it); docker-entrypoint.sh
# exports HOSTNAME.
cat > /etc/apache2/sites-available/000-default.conf <<'CONF'
<VirtualHost *:8000>
    DocumentRoot /var/lib/roundcube/public_html
    <Directory /var/lib/roundcube/public_html>
        Options +FollowSymLinks
        AllowOverride All
        Require all granted
    </Directory>
    Header always set X-Served-By "${HOSTNAME}"
</VirtualHost>
CONF

# shellcheck shell=sh
# Port 8000, logs to the container's stdout/stderr, no default page.
echo 'Listen 8000' > /etc/apache2/ports.conf
cat > /etc/apache2/sites-available/000-default.conf <<'CONF'
<VirtualHost *:8000>
    DocumentRoot /var/www/html
    <Directory /var/www/html>
        AllowOverride All
        Require all granted
    </Directory>
</VirtualHost>
CONF
cat > /etc/apache2/conf-available/container.conf <<'CONF'
ServerName localhost
ErrorLog /proc/self/fd/2
CustomLog /proc/self/fd/1 combined
DirectoryIndex index.php index.html
CONF
a2enconf -q container
a2disconf -q other-vhosts-access-log
a2dismod -q -f mpm_event mpm_worker 2>/dev/null || true
a2enmod -q mpm_prefork rewrite headers
rm -f /var/www/html/index.html

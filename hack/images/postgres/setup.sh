# shellcheck shell=sh
# No cluster from the package: the data directory starts empty, as in the official image.
rm -rf /var/lib/postgresql/* /etc/postgresql/*
sed -i 's/^#\?create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
# No private key baked into an image everyone shares (ssl-cert makes one at install;
# the operator's configuration does not use SSL).
rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem

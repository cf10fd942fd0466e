# shellcheck shell=sh
# No cluster from the package: the data directory starts empty, as in the official image.
rm -rf /var/lib/postgresql/* /etc/postgresql/*
sed -i 's/^#\?create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf

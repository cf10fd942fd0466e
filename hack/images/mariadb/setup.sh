# shellcheck shell=sh
# The data directory starts empty, as in the official image.
rm -rf /var/lib/mysql/*

# shellcheck shell=bash
for tool in "psql --version" "mariadb --version" "redis-cli --version" "dig -v" "curl --version" "ps -p 1" "bash --version"; do
  # shellcheck disable=SC2086 # a command line
  in_image $tool >/dev/null 2>&1 || fail "client: '$tool' does not run"
done
in_image sh -c 'nc -h 2>&1 | grep -q OpenBSD' || fail "client: nc is not netcat-openbsd"

# shellcheck shell=bash
# Debian's autoloaders load the three libraries, and Symfony's MemcachedAdapter
# takes both multi-node forms the operator hands over (no server needed: the
# client connects on first use).
out=$(in_image php -r '
require "Symfony/Component/Cache/autoload.php";
require "Symfony/Component/HttpFoundation/autoload.php";
require "Doctrine/DBAL/autoload.php";
use Symfony\Component\Cache\Adapter\MemcachedAdapter;
foreach (["memcached:?host[a:11211]&host[b:11211]", "memcached://a:11211?host[b:11211]&host[c:11211]"] as $dsn) {
    $hosts = array_map(fn ($s) => $s["host"], MemcachedAdapter::createConnection($dsn)->getServerList());
    echo implode(",", $hosts), "\n";
}
echo class_exists(Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage::class) ? "session" : "no session", "\n";')
[ "$out" = "$(printf 'a,b\na,b,c\nsession')" ] || fail "the Symfony probe answered: $out"

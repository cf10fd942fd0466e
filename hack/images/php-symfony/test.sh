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
# Debian's generated autoloader lacks Symfony Cache's namespace-less class "\xA9"
# (Traits/ValueWrapper.php), which every item with metadata (tags) needs: code on
# this image requires it itself. Fails here once Debian's autoloader loads it.
tagged='
require "Symfony/Component/Cache/autoload.php";
$pool = new Symfony\Component\Cache\Adapter\TagAwareAdapter(new Symfony\Component\Cache\Adapter\FilesystemAdapter("", 0, sys_get_temp_dir()));
$pool->save($pool->getItem("k")->set("v")->tag("t"));
echo $pool->getItem("k")->get();'
if in_image php -r "$tagged" > /dev/null 2>&1; then
  fail "tagged items work without ValueWrapper.php: drop the probe's require of it"
fi
out=$(in_image php -r "require \"Symfony/Component/Cache/Traits/ValueWrapper.php\"; $tagged")
[ "$out" = v ] || fail "a tagged item with ValueWrapper.php required: $out"

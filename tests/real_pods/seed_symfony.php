<?php
// The multi-node wiring of mosparo and eZ Platform, run through the libraries
// they use (Debian's Symfony Cache, HttpFoundation and Doctrine DBAL) with the
// environment of examples/mosparo.yaml or examples/ezplatform.yaml. Run by
// `php` in an app pod of tests/real_pods/seed_symfony.rs; APP is mosparo or ez.
//   put APP N          N cache items through APP's pool: "stored N"
//   get APP N          "hits H of N by WRITERS" (the pods that wrote them)
//   stats APP          one "HOST:PORT ITEMS" line per server APP's pool knows
//   invalidate         eZ: the items' tag invalidated: "invalidated"
//   files-write        mosparo's synchronised paths written: "written"
//   files-read         "PATH WRITER" for each synchronised path
//   db APP             a row through APP's Doctrine connection:
//                      "DATABASE USER VERSION PLATFORM rows=N by WRITERS"
//   env NAME           the variable's value as the pod has it
//   cat PATH           the file's content
//   session URL1 URL2 URL3 VALUE
//                      HTTP client of seed_session.php: VALUE stored through URL1,
//                      read through URL2 and URL3 with the session cookie, and
//                      through URL2 without it; one "BODY" line per answer, then
//                      "node HOST" for the memcached node that holds the session
require_once 'Symfony/Component/Cache/autoload.php';
require_once 'Doctrine/DBAL/autoload.php';
// Debian's generated autoloader misses the namespace-less class "\xA9" that
// composer's classmap loads: every item with metadata (tags) needs it.
require_once 'Symfony/Component/Cache/Traits/ValueWrapper.php';

use Doctrine\DBAL\Connection;
use Doctrine\DBAL\DriverManager;
use Doctrine\DBAL\Tools\DsnParser;
use Symfony\Component\Cache\Adapter\AdapterInterface;
use Symfony\Component\Cache\Adapter\MemcachedAdapter;
use Symfony\Component\Cache\Adapter\RedisAdapter;
use Symfony\Component\Cache\Adapter\TagAwareAdapter;

const TAG = 'seed-probe';

function env(string $name): string
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        fwrite(STDERR, "$name is not set\n");
        exit(2);
    }
    return $value;
}

/** The cache client and pool APP builds from its environment. */
function pool(string $app): array
{
    if ($app === 'mosparo') {
        // mosparo: framework.cache.app is cache.adapter.memcached with
        // MEMCACHED_URL as its provider, taken as it is.
        $client = MemcachedAdapter::createConnection(env('MEMCACHED_URL'));
        return [$client, new MemcachedAdapter($client)];
    }
    // eZ Platform: CACHE_POOL picks the backend, which adds its scheme to
    // CACHE_DSN; the pool is tag-aware and namespaced by CACHE_NAMESPACE.
    $namespace = env('CACHE_NAMESPACE');
    switch (env('CACHE_POOL')) {
        case 'cache.memcached':
            $client = MemcachedAdapter::createConnection('memcached://' . env('CACHE_DSN'));
            $adapter = new MemcachedAdapter($client, $namespace);
            break;
        case 'cache.redis':
            $client = RedisAdapter::createConnection('redis://' . env('CACHE_DSN'));
            $adapter = new RedisAdapter($client, $namespace);
            break;
        default:
            fwrite(STDERR, 'unknown CACHE_POOL ' . getenv('CACHE_POOL') . "\n");
            exit(2);
    }
    return [$client, new TagAwareAdapter($adapter)];
}

/** The Doctrine connection APP opens. */
function connection(string $app): Connection
{
    if ($app === 'mosparo') {
        // mosparo reads its database settings from the file its setup wizard
        // wrote, at MOSPARO_CONFIG_FILE_PATH.
        $config = require env('MOSPARO_CONFIG_FILE_PATH');
        $drivers = ['postgres' => 'pdo_pgsql', 'mysql' => 'pdo_mysql'];
        $params = [
            'driver' => $drivers[$config['database_system']] ?? 'unknown',
            'host' => $config['database_host'],
            'port' => (int) $config['database_port'],
            'dbname' => $config['database_name'],
            'user' => $config['database_user'],
            'password' => $config['database_password'],
        ];
    } else {
        // eZ: DATABASE_URL, its scheme mapped as doctrine.yaml's url option does.
        $params = (new DsnParser(['mysql' => 'pdo_mysql', 'pgsql' => 'pdo_pgsql']))->parse(env('DATABASE_URL'));
    }
    return DriverManager::getConnection($params + ['driverOptions' => [PDO::ATTR_TIMEOUT => 5]]);
}

/** mosparo's synchronised paths: the config file's folder, public/resources, var/data. */
function synchronised(): array
{
    return [
        env('MOSPARO_CONFIG_FILE_PATH'),
        '/mosparo/public/resources/project-1.css',
        '/mosparo/var/data/rule-packages.json',
    ];
}

function http(string $url, string $cookie = ''): array
{
    $headers = $cookie === '' ? '' : "Cookie: $cookie\r\n";
    $context = stream_context_create(['http' => ['header' => $headers, 'timeout' => 10, 'ignore_errors' => true]]);
    $body = file_get_contents($url, false, $context);
    $set = '';
    foreach ($http_response_header ?? [] as $line) {
        if (preg_match('/^Set-Cookie:\s*([^;]+)/i', $line, $m)) {
            $set = $m[1];
        }
    }
    return [trim((string) $body), $set];
}

$me = gethostname();
$mode = $argv[1] ?? '';
switch ($mode) {
    case 'env':
        echo env($argv[2]), "\n";
        break;
    case 'cat':
        echo file_get_contents($argv[2]);
        break;
    case 'put':
        [, , $app, $n] = $argv;
        [, $pool] = pool($app);
        for ($i = 0; $i < (int) $n; $i++) {
            $item = $pool->getItem("item.$i")->set("$i $me");
            if ($pool instanceof TagAwareAdapter) {
                $item->tag(TAG);
            }
            $pool->saveDeferred($item);
        }
        echo $pool->commit() ? "stored $n\n" : "not stored\n";
        break;
    case 'get':
        [, , $app, $n] = $argv;
        [, $pool] = pool($app);
        $keys = array_map(fn ($i) => "item.$i", range(0, (int) $n - 1));
        $hits = 0;
        $writers = [];
        foreach ($pool->getItems($keys) as $key => $item) {
            if ($item->isHit() && explode(' ', $item->get())[0] === substr($key, 5)) {
                $hits++;
                $writers[explode(' ', $item->get())[1]] = true;
            }
        }
        ksort($writers);
        echo "hits $hits of $n by ", implode(',', array_keys($writers)) ?: '-', "\n";
        break;
    case 'stats':
        [$client] = pool($argv[2]);
        foreach ($client->getStats() as $server => $stats) {
            echo $server, ' ', $stats['curr_items'] ?? '?', "\n";
        }
        break;
    case 'invalidate':
        [, $pool] = pool('ez');
        echo $pool->invalidateTags([TAG]) ? "invalidated\n" : "not invalidated\n";
        break;
    case 'files-write':
        // What the wizard and the admin tasks write, by this pod: the database
        // settings as a person copies them from the Secret into the wizard.
        [$config, $css, $data] = synchronised();
        $settings = [
            'database_system' => env('WEBCLUSTER_DB_ENGINE') === 'postgresql' ? 'postgres' : 'mysql',
            'database_host' => env('WEBCLUSTER_DB_WRITE_HOST'),
            'database_port' => env('WEBCLUSTER_DB_WRITE_PORT'),
            'database_name' => env('WEBCLUSTER_DB_WRITE_NAME'),
            'database_user' => env('WEBCLUSTER_DB_WRITE_USER'),
            'database_password' => env('WEBCLUSTER_DB_WRITE_PASSWORD'),
            'written_by' => $me,
        ];
        foreach ([$css, $data] as $path) {
            @mkdir(dirname($path), 0775, true);
        }
        $ok = file_put_contents($config, '<?php return ' . var_export($settings, true) . ";\n") !== false
            && file_put_contents($css, "/* $me */ .mosparo__container { color: #000; }\n") !== false
            && file_put_contents($data, json_encode(['written_by' => $me]) . "\n") !== false;
        echo $ok ? "written\n" : "not written\n";
        break;
    case 'files-read':
        [$config, $css, $data] = synchronised();
        echo $config, ' ', (@include $config)['written_by'] ?? '-', "\n";
        echo $css, ' ', preg_match('#^/\* (\S+) \*/#', (string) @file_get_contents($css), $m) ? $m[1] : '-', "\n";
        echo $data, ' ', json_decode((string) @file_get_contents($data), true)['written_by'] ?? '-', "\n";
        break;
    case 'db':
        $db = connection($argv[2]);
        $pg = $db->getDatabasePlatform() instanceof Doctrine\DBAL\Platforms\PostgreSQLPlatform;
        $who = $pg
            ? 'SELECT current_database(), current_user, version()'
            : "SELECT DATABASE(), SUBSTRING_INDEX(CURRENT_USER(), '@', 1), VERSION()";
        [$database, $user, $version] = $db->fetchNumeric($who);
        // PostgreSQL's "PostgreSQL 17.2 on ...", MariaDB's "11.8.3-MariaDB-... from Debian".
        $version = explode(' ', $version)[$pg ? 1 : 0];
        $db->executeStatement('CREATE TABLE IF NOT EXISTS seed_probe (writer VARCHAR(100) NOT NULL)');
        $db->insert('seed_probe', ['writer' => $me]);
        $writers = $db->fetchFirstColumn('SELECT DISTINCT writer FROM seed_probe ORDER BY writer');
        $rows = $db->fetchOne('SELECT count(*) FROM seed_probe');
        $platform = (new ReflectionClass($db->getDatabasePlatform()))->getShortName();
        echo "$database $user $version $platform rows=$rows by ", implode(',', $writers), "\n";
        break;
    case 'session':
        [, , $first, $second, $third, $value] = $argv;
        [$body, $cookie] = http("$first?set=" . rawurlencode($value));
        echo $body, "\n";
        foreach ([$second, $third] as $url) {
            echo http($url, $cookie)[0], "\n";
        }
        echo http($second)[0], "\n";
        // Which node PHP's memcached session handler put the session on.
        $key = ini_get('memcached.sess_prefix') . explode('=', $cookie, 2)[1];
        foreach (explode(',', env('SESSION_SAVE_PATH')) as $server) {
            [$host, $port] = explode(':', $server);
            $node = new Memcached();
            $node->addServer($host, (int) $port);
            if ($node->get($key) !== false) {
                echo "node $host\n";
            }
        }
        break;
    default:
        fwrite(STDERR, "unknown mode $mode\n");
        exit(2);
}

<?php
// The real-pod tests' cache client, run by `php` in an app pod with the
// WEBCLUSTER_CACHE_* variables the operator injected.
//   memcached             one line per WEBCLUSTER_CACHE_HOSTS entry:
//                         "HOST:PORT pid=PID own=yes|no others=N" (the node
//                         keeps its own key and none of the others' keys)
//   redis KEY VALUE HOST  writes KEY on the primary (WEBCLUSTER_CACHE_HOSTS),
//                         reads it at HOST: "ROLE VALUE|missing"
$hosts = explode(',', (string) getenv('WEBCLUSTER_CACHE_HOSTS'));
$mode = $argv[1] ?? '';
if ($mode === 'memcached') {
    $nodes = [];
    foreach ($hosts as $i => $entry) {
        [$host, $port] = explode(':', $entry);
        $node = new Memcached();
        $node->addServer($host, (int) $port);
        if (!$node->set("written-to-$i", $entry)) {
            echo "$entry set failed: ", $node->getResultMessage(), "\n";
            continue;
        }
        $nodes[$i] = [$entry, $node];
    }
    foreach ($nodes as $i => [$entry, $node]) {
        $pid = $node->getStats()[$entry]['pid'] ?? '?';
        $others = 0;
        foreach (array_keys($hosts) as $j) {
            if ($j !== $i && $node->get("written-to-$j") !== false) {
                $others++;
            }
        }
        $own = $node->get("written-to-$i") === $entry ? 'yes' : 'no';
        echo "$entry pid=$pid own=$own others=$others\n";
    }
} elseif ($mode === 'redis') {
    [, , $key, $value, $at] = $argv;
    [$host, $port] = explode(':', $hosts[0]);
    $primary = new Redis();
    $primary->connect($host, (int) $port, 5);
    $primary->set($key, $value);
    $replica = new Redis();
    $replica->connect($at, (int) $port, 5);
    $role = $replica->info('replication')['role'] ?? '?';
    $read = $replica->get($key);
    echo $role, ' ', $read === false ? 'missing' : $read, "\n";
} else {
    fwrite(STDERR, "usage: memcached | redis KEY VALUE HOST\n");
    exit(2);
}

<?php
// The real-pod failover test's writer, run by `php` in an app pod. Each write
// opens its own connection through the DSN the operator injected, as a PHP
// app does per request:
//   run VAR SECONDS FIRST
//                     inserts ids FIRST, FIRST + 1, ... every 100 ms for
//                     SECONDS; prints "ok ID MS" for each acknowledged insert
//                     and "err MS WHY" for each failed one (MS: milliseconds
//                     since the epoch)
//   ids VAR [HOST]    every id in the table, one a line, optionally at HOST
//   try VAR HOST ID   inserts ID at HOST once; prints "ok" or "err WHY"
[, $mode, $var, $arg, $first] = $argv + [3 => '', 4 => '1'];
$at_host = in_array($mode, ['ids', 'try'], true) && $arg !== '';
$url = parse_url((string) getenv($var));
if (!isset($url['scheme'], $url['host'], $url['user'], $url['pass'], $url['path'])) {
    fwrite(STDERR, "$var is not a database URL\n");
    exit(2);
}
$driver = $url['scheme'] === 'pgsql' ? 'pgsql' : 'mysql';
$host = $at_host ? $arg : $url['host'];
$port = $url['port'] ?? ($driver === 'pgsql' ? 5432 : 3306);
$dsn = sprintf('%s:host=%s;port=%d;dbname=%s', $driver, $host, $port, ltrim($url['path'], '/'));
$connect = fn () => new PDO($dsn, urldecode($url['user']), urldecode($url['pass']), [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_TIMEOUT => 2,
]);
$now = fn () => (int) round(microtime(true) * 1000);
if ($mode === 'ids') {
    foreach ($connect()->query('SELECT id FROM acked ORDER BY id') as $row) {
        echo $row[0], "\n";
    }
    exit(0);
}
if ($mode === 'try') {
    try {
        $connect()->prepare('INSERT INTO acked VALUES (?)')->execute([(int) $first]);
        echo "ok\n";
    } catch (Throwable $e) {
        echo 'err ', str_replace("\n", ' ', $e->getMessage()), "\n";
    }
    exit(0);
}
$connect()->exec('CREATE TABLE IF NOT EXISTS acked (id INT PRIMARY KEY)');
$end = microtime(true) + (float) $arg;
// An id is never tried twice: a failed insert may still have committed.
for ($id = (int) $first; microtime(true) < $end; $id++, usleep(100000)) {
    try {
        $connect()->prepare('INSERT INTO acked VALUES (?)')->execute([$id]);
        echo "ok $id ", $now(), "\n";
    } catch (Throwable $e) {
        echo 'err ', $now(), ' ', str_replace("\n", ' ', $e->getMessage()), "\n";
    }
}

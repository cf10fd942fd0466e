<?php
// The real-pod tests' database client, run by `php` in an app pod: it connects
// with the DSN the operator injected (a WEBCLUSTER_DB_*_URL variable), like the
// app does, and says whether a primary or a replica answered.
//   put VAR ID          insert row ID (creating the table on first use)
//   get VAR ID          "ROLE found WRITER" or "ROLE missing"
//   count VAR - [HOST]  "ROLE N", optionally at HOST instead of the DSN's host
[, $mode, $var, $id] = $argv + [3 => '-'];
$url = parse_url((string) getenv($var));
if (!isset($url['scheme'], $url['host'], $url['user'], $url['pass'], $url['path'])) {
    fwrite(STDERR, "$var is not a database URL\n");
    exit(2);
}
$driver = $url['scheme'] === 'pgsql' ? 'pgsql' : 'mysql';
$host = $argv[4] ?? $url['host'];
$port = $url['port'] ?? ($driver === 'pgsql' ? 5432 : 3306);
$dsn = sprintf('%s:host=%s;port=%d;dbname=%s', $driver, $host, $port, ltrim($url['path'], '/'));
$pdo = new PDO($dsn, urldecode($url['user']), urldecode($url['pass']), [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_TIMEOUT => 5,
]);
$replica = $driver === 'pgsql' ? 'SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END' : 'SELECT @@read_only';
$role = (int) $pdo->query($replica)->fetchColumn() === 1 ? 'replica' : 'primary';
switch ($mode) {
    case 'put':
        $pdo->exec('CREATE TABLE IF NOT EXISTS written (id INT PRIMARY KEY, writer VARCHAR(128))');
        $pdo->prepare('INSERT INTO written VALUES (?, ?)')->execute([(int) $id, gethostname()]);
        echo "$role put $id\n";
        break;
    case 'get':
        $row = $pdo->prepare('SELECT writer FROM written WHERE id = ?');
        $row->execute([(int) $id]);
        $writer = $row->fetchColumn();
        echo $role, $writer === false ? ' missing' : " found $writer", "\n";
        break;
    case 'count':
        echo $role, ' ', $pdo->query('SELECT count(*) FROM written')->fetchColumn(), "\n";
        break;
    default:
        fwrite(STDERR, "unknown mode $mode\n");
        exit(2);
}

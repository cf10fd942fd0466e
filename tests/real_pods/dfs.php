<?php
// eZ Platform's DFS IO handler, as its documentation sets it up: the file
// metadata in table ezdfsfile (eZ's dfs_schema.sql) reached through Doctrine
// DBAL at DFS_DATABASE_URL, the binary data under DFS_NFS_PATH on the shared
// volume. Run by `php` in an app pod of tests/real_pods/dfs.rs.
//   where VAR          "DATABASE USER" of the connection at VAR
//   tables VAR         the tables of the database at VAR, comma-separated
//   store NAME TEXT    writes the file and its metadata: "stored NAME SIZE"
//   stat NAME [VAR]    from the metadata at VAR (default DFS_DATABASE_URL) and
//                      the file: "NAME SIZE" ("missing NAME" without a row)
//   create VAR TABLE   a table with one row in the database at VAR: "created TABLE"
//   open VAR DATABASE TABLE
//                      "read N" (rows of TABLE) or "refused": VAR's user on another database
require_once 'Doctrine/DBAL/autoload.php';

use Doctrine\DBAL\Connection;
use Doctrine\DBAL\DriverManager;
use Doctrine\DBAL\Platforms\PostgreSQLPlatform;
use Doctrine\DBAL\Schema\Schema;
use Doctrine\DBAL\Tools\DsnParser;

function params(string $var): array
{
    $url = (string) getenv($var);
    if ($url === '') {
        fwrite(STDERR, "$var is not set\n");
        exit(2);
    }
    // The operator's schemes, as eZ's doctrine.yaml maps them.
    return (new DsnParser(['mysql' => 'pdo_mysql', 'pgsql' => 'pdo_pgsql']))->parse($url);
}

function connect(array $params): Connection
{
    return DriverManager::getConnection($params + ['driverOptions' => [PDO::ATTR_TIMEOUT => 5]]);
}

function metadata_table(Connection $db): void
{
    if ($db->createSchemaManager()->tablesExist(['ezdfsfile'])) {
        return;
    }
    $schema = new Schema();
    $table = $schema->createTable('ezdfsfile');
    $table->addColumn('name_hash', 'string', ['length' => 34]);
    $table->addColumn('name', 'text');
    $table->addColumn('name_trunk', 'text');
    $table->addColumn('datatype', 'string', ['length' => 255, 'default' => 'application/octet-stream']);
    $table->addColumn('scope', 'string', ['length' => 25, 'default' => '']);
    $table->addColumn('size', 'bigint', ['default' => 0]);
    $table->addColumn('mtime', 'integer', ['default' => 0]);
    $table->addColumn('expired', 'boolean', ['default' => false]);
    $table->addColumn('status', 'boolean', ['default' => false]);
    $table->setPrimaryKey(['name_hash']);
    foreach ($schema->toSql($db->getDatabasePlatform()) as $sql) {
        $db->executeStatement($sql);
    }
}

[, $mode] = $argv + [1 => ''];
$nfs = rtrim((string) getenv('DFS_NFS_PATH'), '/');
switch ($mode) {
    case 'where':
        $db = connect(params($argv[2]));
        $who = $db->getDatabasePlatform() instanceof PostgreSQLPlatform
            ? 'SELECT current_database(), current_user'
            : "SELECT DATABASE(), SUBSTRING_INDEX(CURRENT_USER(), '@', 1)";
        echo implode(' ', $db->fetchNumeric($who)), "\n";
        break;
    case 'tables':
        $tables = connect(params($argv[2]))->createSchemaManager()->listTableNames();
        sort($tables);
        echo implode(',', $tables), "\n";
        break;
    case 'store':
        [, , $name, $text] = $argv;
        $db = connect(params('DFS_DATABASE_URL'));
        metadata_table($db);
        $path = "$nfs/$name";
        @mkdir(dirname($path), 0775, true);
        file_put_contents($path, $text);
        $db->insert('ezdfsfile', [
            'name_hash' => md5($name), 'name' => $name, 'name_trunk' => $name,
            'size' => strlen($text), 'mtime' => time(),
        ]);
        echo "stored $name ", strlen($text), "\n";
        break;
    case 'stat':
        $name = $argv[2];
        $db = connect(params($argv[3] ?? 'DFS_DATABASE_URL'));
        $row = $db->fetchAssociative('SELECT size FROM ezdfsfile WHERE name_hash = ?', [md5($name)]);
        if ($row === false) {
            echo "missing $name\n";
            break;
        }
        $size = @filesize("$nfs/$name");
        echo $size === (int) $row['size'] ? "$name $size" : "$name metadata {$row['size']} file " . var_export($size, true), "\n";
        break;
    case 'create':
        [, , $var, $name] = $argv;
        $db = connect(params($var));
        $schema = new Schema();
        $schema->createTable($name)->addColumn('id', 'integer');
        foreach ($schema->toSql($db->getDatabasePlatform()) as $sql) {
            $db->executeStatement($sql);
        }
        $db->insert($name, ['id' => 1]);
        echo "created $name\n";
        break;
    case 'open':
        [, , $var, $database, $name] = $argv;
        $params = params($var);
        $params['dbname'] = $database;
        try {
            $rows = connect($params)->fetchOne("SELECT count(*) FROM $name");
        } catch (Doctrine\DBAL\Exception $e) {
            echo "refused\n";
            break;
        }
        echo "read $rows\n";
        break;
    default:
        fwrite(STDERR, "unknown mode $mode\n");
        exit(2);
}

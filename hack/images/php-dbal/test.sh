# shellcheck shell=bash
# DBAL loads from Debian's autoloader and parses both DSN schemes the operator writes.
out=$(in_image php -r '
require "Doctrine/DBAL/autoload.php";
$parser = new Doctrine\DBAL\Tools\DsnParser(["mysql" => "pdo_mysql", "pgsql" => "pdo_pgsql"]);
foreach (["mysql://u:p@h:3306/dfs", "pgsql://u:p@h:5432/dfs"] as $url) {
    $p = $parser->parse($url);
    echo $p["driver"], " ", $p["dbname"], "\n";
}')
[ "$out" = "$(printf 'pdo_mysql dfs\npdo_pgsql dfs')" ] || fail "DBAL parsed the DSNs as: $out"

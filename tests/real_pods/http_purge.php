<?php
// The real-pod HTTP cache client, run by `php` in an app pod. Invalidations go
// the way eZ Platform's purge client (FOSHttpCache's Varnish client) sends
// them: to HTTPCACHE_PURGE_SERVER, with X-Invalidate-Token set to
// HTTPCACHE_VARNISH_INVALIDATE_TOKEN. Prints one JSON object.
//   get PATH                      GET WEBCLUSTER_HTTP_CACHE_URL.PATH
//   purgekeys HEADER TAGS TOKEN   PURGEKEYS / with HEADER: TAGS (space-separated)
//   purge PATH TOKEN              PURGE PATH
// TOKEN: app (the app's own), none or wrong.
function token_header(string $mode): array
{
    $token = (string) getenv('HTTPCACHE_VARNISH_INVALIDATE_TOKEN');
    return match ($mode) {
        'app' => ["X-Invalidate-Token: $token"],
        'wrong' => ['X-Invalidate-Token: ' . strrev($token)],
        default => [],
    };
}

function send(string $method, string $url, array $headers): array
{
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => $headers,
        'ignore_errors' => true,
        'timeout' => 10,
    ]]);
    $body = @file_get_contents($url, false, $context);
    $status = $http_response_header[0] ?? 'no answer';
    $named = [];
    foreach (array_slice($http_response_header ?? [], 1) as $line) {
        [$name, $value] = array_map('trim', explode(':', $line, 2) + [1 => '']);
        $named[strtolower($name)] = $value;
    }
    return [
        'status' => $status,
        'x_varnish' => $named['x-varnish'] ?? '',
        'age' => $named['age'] ?? '',
        'body' => trim((string) $body),
    ];
}

$server = rtrim((string) getenv('HTTPCACHE_PURGE_SERVER'), '/');
$mode = $argv[1] ?? '';
$answer = match ($mode) {
    'get' => send('GET', rtrim((string) getenv('WEBCLUSTER_HTTP_CACHE_URL'), '/') . $argv[2], []),
    'purgekeys' => send('PURGEKEYS', "$server/", array_merge(["$argv[2]: $argv[3]"], token_header($argv[4]))),
    'purge' => send('PURGE', $server . $argv[2], token_header($argv[3])),
    default => null,
};
if ($answer === null) {
    fwrite(STDERR, "usage: get PATH | purgekeys HEADER TAGS TOKEN | purge PATH TOKEN\n");
    exit(2);
}
echo json_encode($answer), "\n";

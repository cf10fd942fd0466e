<?php
// A Symfony session as eZ Platform runs it with examples/ezplatform.yaml's
// SESSION_HANDLER_ID: app.session.handler.native_memcached is PHP's own
// memcached session handler at SESSION_SAVE_PATH, under Symfony's
// NativeSessionStorage. Served by Apache in the app pods of
// tests/real_pods/seed_symfony.rs: `?set=VALUE` stores VALUE, a plain request
// reads it; the answer is "HOSTNAME VALUE" ("-" when the session has none).
require_once 'Symfony/Component/HttpFoundation/autoload.php';

use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\Session\Session;
use Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage;

$me = gethostname();
if (getenv('SESSION_HANDLER_ID') !== 'app.session.handler.native_memcached') {
    (new Response('unknown SESSION_HANDLER_ID ' . getenv('SESSION_HANDLER_ID') . "\n", 500))->send();
    exit;
}
// The handler must be PHP's memcached one before Symfony registers its proxy
// around \SessionHandler, which then calls into it.
ini_set('session.save_handler', 'memcached');
ini_set('session.save_path', (string) getenv('SESSION_SAVE_PATH'));
$session = new Session(new NativeSessionStorage([], new SessionHandler()));

$request = Request::createFromGlobals();
$request->setSession($session);
$session->start();
if ($request->query->has('set')) {
    $session->set('probe', $request->query->get('set'));
}
$response = new Response("$me " . $session->get('probe', '-') . "\n", 200, [
    'Content-Type' => 'text/plain',
    'X-Served-By' => $me,
]);
$session->save();
$response->prepare($request)->send();

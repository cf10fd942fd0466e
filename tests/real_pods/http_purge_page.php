<?php
// A page as eZ Platform serves content: cacheable by a shared cache, tagged
// for xkey (ez-all, the content cID, its location lID). Counts its renders in
// /tmp/renders-ID, so a test tells a cache hit from a render.
$id = (int) ($_GET['id'] ?? 0);
$file = "/tmp/renders-$id";
$renders = (int) @file_get_contents($file) + 1;
file_put_contents($file, (string) $renders, LOCK_EX);
header('Cache-Control: public, s-maxage=3600');
header("xkey: ez-all c$id l$id");
header('Content-Type: text/plain');
echo "render $renders\n";

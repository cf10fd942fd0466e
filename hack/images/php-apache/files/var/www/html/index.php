<?php
// Placeholder page of localhost/webcluster/php-apache: names the pod that answered.
header('X-Served-By: ' . gethostname());
header('Content-Type: text/plain');
echo gethostname(), "\n";

<?php
// Roundcube's settings from the official image's ROUNDCUBEMAIL_* variables
// (read per request, so a pod's environment is its configuration), then
// every /var/roundcube/config/*.php, as that image includes them.
$env = static function (string $name, ?string $default = null): ?string {
    $value = getenv($name);
    return $value === false || $value === '' ? $default : $value;
};
// Host and port joined as the official image does (its defaults: 143, 587).
$host = static function (string $host, ?string $port): string {
    return $port === null ? $host : "$host:$port";
};

$config = [];
$config['db_dsnw'] = $env('ROUNDCUBEMAIL_DSNW', '');
$config['db_dsnr'] = $env('ROUNDCUBEMAIL_DSNR', '');
$config['des_key'] = $env('ROUNDCUBEMAIL_DES_KEY', '');
$config['temp_dir'] = $env('ROUNDCUBEMAIL_TEMP_DIR', '/tmp/roundcube-temp');
$config['imap_host'] = $host($env('ROUNDCUBEMAIL_DEFAULT_HOST', 'localhost'), $env('ROUNDCUBEMAIL_DEFAULT_PORT', '143'));
$config['smtp_host'] = $host($env('ROUNDCUBEMAIL_SMTP_SERVER', 'localhost'), $env('ROUNDCUBEMAIL_SMTP_PORT', '587'));
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';
$config['log_driver'] = 'stdout';
$config['skin'] = $env('ROUNDCUBEMAIL_SKIN', 'elastic');
$config['plugins'] = [];
$config['enable_spellcheck'] = false;

foreach (glob('/var/roundcube/config/*.php') ?: [] as $file) {
    include $file;
}

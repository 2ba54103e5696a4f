<?php
// Adminer with the login form's server field prefilled from ADMINER_DEFAULT_SERVER ("db" when
// unset), the behaviour of the official image's index.php.

function adminer_object() {
    final class StandinAdminer extends \Adminer\Adminer {
        public function loginFormField($name, $heading, $value): string {
            if ($name === 'server') {
                $server = getenv('ADMINER_DEFAULT_SERVER') ?: 'db';
                $value = str_replace('name="auth[server]" value=""',
                                     'name="auth[server]" value="' . htmlspecialchars($server, ENT_QUOTES) . '"', $value);
            }
            return parent::loginFormField($name, $heading, $value);
        }
    }
    return new StandinAdminer();
}

require __DIR__ . '/adminer.php';

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2TLS: TLS set-up for the scenario tests (mod_ssl).
#
#   my ($crt, $key) = Ev2TLS::self_signed_cert($s->dir);   # via openssl
#   $s->{conf} .= "Listen 127.0.0.1:$tls_port\n"
#              . Ev2TLS::vhost_conf($tls_port, $crt, $key);
#
# The server needs the ssl module (and socache_shmcb when the scenario sets
# an SSLSessionCache).  A TLS client connection speaking raw HTTP/1.1 is in
# Ev2HTTPS.pm.
package Ev2TLS;

use strict;
use warnings;

use POSIX ();

# Generate a self-signed certificate (P-256 key) for 127.0.0.1 into $dir.
# Returns (certificate path, key path); dies with openssl's output on
# failure.  Bounded by timeout(1).
sub self_signed_cert {
    my $dir = shift;
    my ($crt, $key) = ("$dir/server.crt", "$dir/server.key");
    my @cmd = ('timeout', '-k', '5', '60', 'openssl', 'req', '-x509',
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', $key, '-out', $crt);
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    die "openssl req failed (exit " . ($? >> 8) . "): $out"
        if $? || !-s $crt || !-s $key;
    chmod 0644, $crt, $key;
    return ($crt, $key);
}

# A <VirtualHost> on 127.0.0.1:$port with TLS on (the Listen line is the
# caller's).
sub vhost_conf {
    my ($port, $crt, $key) = @_;
    return <<"EOF2";
<VirtualHost 127.0.0.1:$port>
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
</VirtualHost>
EOF2
}

1;

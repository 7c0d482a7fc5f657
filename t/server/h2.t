# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# h2.t: mod_http2 works on top of the MPM, in cleartext (h2c, direct and by
# Upgrade) and over TLS (mod_ssl, ALPN h2): h2load completes every request
# with a 2xx, curl negotiates HTTP/2.  Idle HTTP/2 connections wait in the
# MPM (mod_status ConnsAsyncWaitIO), not in worker threads: one child with 4
# workers holds 50 idle h2c connections and still serves a new HTTP/1.1
# client at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2TLS;

my $tls_port = Ev2Server::free_port();
my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 2
ServerLimit 4
ThreadsPerChild 25
MaxRequestWorkers 100
MinSpareThreads 25
MaxSpareThreads 75
EOF2
    modules => [qw(socache_shmcb ssl http2)],
);
my ($crt, $key) = Ev2TLS::self_signed_cert($s->dir);
my $d = $s->dir;
$s->{conf} = <<"EOF2";
Protocols h2 h2c http/1.1
Timeout 30
KeepAliveTimeout 30
SSLSessionCache "shmcb:$d/run/ssl_scache(512000)"
Listen 127.0.0.1:$tls_port
<VirtualHost 127.0.0.1:$tls_port>
    ServerName 127.0.0.1
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
</VirtualHost>
EOF2
$s->write_config;
$s->start;

my $http  = $s->url('/index.html');
my $https = "https://127.0.0.1:$tls_port/index.html";

# h2load: 10000 requests over 20 connections, 10 streams each.
sub h2load {
    my ($url) = @_;
    my ($rc, $out) = Ev2Server::run_cmd(['timeout', '-k', '5', '120',
        'h2load', '-n', '10000', '-c', '20', '-m', '10', $url]);
    my %r = (rc => $rc, out => $out);
    if ($out =~ /^requests: .*?(\d+) succeeded, (\d+) failed/m) {
        ($r{ok}, $r{failed}) = ($1, $2);
    }
    if ($out =~ /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m) {
        ($r{s2}, $r{s3}, $r{s4}, $r{s5}) = ($1, $2, $3, $4);
    }
    return \%r;
}

for my $case (['h2c', $http], ['h2 over TLS', $https]) {
    my ($name, $url) = @$case;
    my $r = h2load($url);
    is($r->{rc}, 0, "$name: h2load exited 0") or diag $r->{out};
    is($r->{ok} // -1, 10000, "$name: 10000 succeeded") or diag $r->{out};
    is($r->{failed} // -1, 0, "$name: 0 failed");
    is($r->{s2} // -1, 10000, "$name: all status codes 2xx")
        or diag $r->{out};
    like($r->{out}, qr/Application protocol: h2c?\b/, "$name: h2load spoke HTTP/2");
}

# curl: prior knowledge, Upgrade from HTTP/1.1, ALPN over TLS.
for my $case (['--http2-prior-knowledge', $http], ['--http2', $http],
              ['--http2', $https]) {
    my ($opt, $url) = @$case;
    my ($rc, $out) = Ev2Server::run_cmd(['curl', '-sS', '-k', '-m', '10',
        '-o', '/dev/null', '-w', '%{http_version} %{http_code}', $opt, $url]);
    is($out, '2 200', "curl $opt $url: HTTP/2, 200")
        or diag "curl exit $rc: $out";
}

like($s->log_text, qr/AH00489|resuming normal operations/, 'server ran normally');
unlike($s->log_text, qr/AH10034/, 'mod_http2 did not disable itself for this MPM');
ok($s->stop, 'load server stopped cleanly');

# ---- idle h2c connections do not hold workers -----------------------------

my $N = 50;
my $s2 = Ev2Server->new(
    mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 100),
    conf => <<'EOF2',
Protocols h2c http/1.1
Timeout 30
KeepAliveTimeout 30
EOF2
    modules => ['http2'],
);
$s2->start;

my $preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
my @socks;
my $bad = 0;
for my $i (1 .. $N) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s2->port,
        Proto => 'tcp', Timeout => 10);
    unless ($c) { $bad++; diag "connect $i: $!" if $bad <= 5; next }
    unless (defined syswrite($c, $preface)) { $bad++; next }
    push @socks, $c;
}
is($bad, 0, "$N h2c connections opened, preface and SETTINGS sent");

# Read what the server sent on an h2c connection so far (bounded by $wait
# seconds of silence).  Returns (frame types seen, eof flag).
my %inbuf;
sub drain {
    my ($c, $wait) = @_;
    my $sel = IO::Select->new($c);
    my $eof = 0;
    while ($sel->can_read($wait)) {
        my $n = sysread($c, my $chunk, 65536);
        if (!$n) { $eof = 1; last }
        $inbuf{$c} .= $chunk;
        $wait = 0.05;
    }
    my @types;
    my $b = $inbuf{$c} // '';
    my $off = 0;
    while (length($b) - $off >= 9) {
        my ($l1, $l2, $type) = unpack('nCC', substr($b, $off, 4));
        my $len = $l1 * 256 + $l2;
        last if length($b) - $off < 9 + $len;
        push @types, $type;
        $off += 9 + $len;
    }
    return (\@types, $eof);
}

# Every connection is answered with the server's SETTINGS frame (h2 spoken).
my $settings = 0;
for my $c (@socks) {
    my ($types, $eof) = drain($c, 10);
    $settings++ if @$types && $types->[0] == 4 && !$eof;
}
is($settings, scalar @socks, 'every connection got a SETTINGS frame');

sleep 1;
my $st;
my $ok = $s2->wait_for(sub {
    $st = $s2->status_auto or return 0;
    ($st->{BusyWorkers} // 99) <= 2 && ($st->{ConnsAsyncWaitIO} // 0) >= $N - 5;
}, 10, 0.25);
my $what = $st ? join(' ', map { "$_=" . ($st->{$_} // 'undef') }
    qw(BusyWorkers IdleWorkers ConnsTotal ConnsAsyncWaitIO ConnsAsyncKeepAlive
       ConnsAsyncWriting)) : 'no status';
ok($ok, "idle h2c connections wait in the MPM: BusyWorkers <= 2, ConnsAsyncWaitIO >= "
    . ($N - 5)) or diag $what;
note $what;

my $t0 = time;
my $r = $s2->get('/index.html', timeout => 10);
my $dt = time - $t0;
ok($r && $r->{status} == 200, "new HTTP/1.1 client gets 200 beside $N idle h2c connections")
    or diag($r ? "status $r->{status}" : "error: $@");
cmp_ok($dt, '<', 1.0, 'and is served in under 1 s') or diag sprintf('took %.3f s', $dt);

my ($open, $goaway) = (0, 0);
for my $c (@socks) {
    my ($types, $eof) = drain($c, 0);
    $open++ unless $eof;
    $goaway++ if grep { $_ == 7 } @$types;
}
is($open, scalar @socks, 'the idle h2c connections are still open');
is($goaway, 0, 'and none got a GOAWAY');

close $_ for @socks;
ok($s2->stop, 'idle server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# https_keepalive.t: idle HTTPS keep-alive connections wait in the MPM, not
# in worker threads.  One child with 4 workers (mod_ssl, a self-signed
# certificate made by the test) holds 100 idle TLS connections; a new HTTPS
# client is served within 1 s, and then every one of the 100 connections
# answers a second request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2HTTPS;
use Ev2TLS;

plan skip_all => 'IO::Socket::SSL not installed (make deps installs libio-socket-ssl-perl)'
    unless Ev2HTTPS::available();

my $N = 100;
my $tls_port = Ev2Server::free_port();

# The default AsyncRequestWorkerFactor 2 would admit only 4 + 2 x 4 = 12
# connections per child; 100 lets 4 + 100 x 4 in.
my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 100),
    modules => [qw(socache_shmcb ssl)],
);
my ($crt, $key) = Ev2TLS::self_signed_cert($s->dir);
my $d = $s->dir;
$s->{conf} = <<"EOF2" . Ev2TLS::vhost_conf($tls_port, $crt, $key);
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Timeout 30
SSLSessionCache "shmcb:$d/run/ssl_scache(512000)"
Listen 127.0.0.1:$tls_port
EOF2
$s->write_config;
$s->start;

my @conns;
my $bad = 0;
for my $i (1 .. $N) {
    my $c = Ev2HTTPS->connect(port => $tls_port, timeout => 10);
    unless ($c) { $bad++; diag "connect $i: $@" if $bad <= 5; next }
    $c->send(Ev2HTTP::request_string('GET', "/index.html?c=$i"));
    my $r = $c->read_response(timeout => 10);
    if (!$r || $r->{status} != 200 || ($r->{headers}{connection} // '') =~ /close/i) {
        $bad++;
        diag "conn $i: " . ($r ? "status $r->{status}" : $c->{error}) if $bad <= 5;
        next;
    }
    push @conns, $c;
}
is(scalar @conns, $N, "$N HTTPS keep-alive connections each got a keep-alive 200");
is(scalar(grep { $_->alpn eq 'http/1.1' } @conns), scalar @conns, 'ALPN negotiated http/1.1');

my $st;
$s->wait_for(sub { $st = $s->status_auto; $st && ($st->{ConnsAsyncKeepAlive} // 0) >= $N - 5 }, 5, 0.25);
note join ' ', map { "$_=" . ($st ? $st->{$_} // 'undef' : '?') }
    qw(ConnsTotal ConnsAsyncKeepAlive BusyWorkers IdleWorkers);

my $t0 = time;
my $c = Ev2HTTPS->connect(port => $tls_port, timeout => 10);
my $r;
if ($c) {
    $c->send(Ev2HTTP::request_string('GET', '/index.html?new=1', Connection => 'close'));
    $r = $c->read_response(timeout => 10);
    $c->close;
}
my $dt = time - $t0;
ok($r && $r->{status} == 200, "a new HTTPS client gets 200 beside $N idle ones")
    or diag($c ? "error: $c->{error}" : "connect: $@");
cmp_ok($dt, '<', 1.0, 'and is served in under 1 s') or diag sprintf('took %.3f s', $dt);

my $sent = grep { $_->send(Ev2HTTP::request_string('GET', '/index.html?again=1')) } @conns;
my $again = 0;
for my $i (0 .. $#conns) {
    my $r2 = $conns[$i]->read_response(timeout => 15);
    if ($r2 && $r2->{status} == 200) { $again++ }
    elsif ($i - $again < 5) { diag "conn $i again: " . ($r2 ? "status $r2->{status}" : $conns[$i]->{error}) }
}
is($sent, scalar @conns, 'a second request written on every connection');
is($again, scalar @conns, 'every idle HTTPS connection answered its second request');

$_->close for @conns;
ok($s->stop, 'server stopped cleanly');
done_testing();

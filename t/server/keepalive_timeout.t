# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# keepalive_timeout.t: with KeepAliveTimeout 2 the server closes a connection
# that stays idle after one request, between 1.5 and 4 s after the response.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time);
use Ev2Server;
use Ev2HTTP;

my $s = Ev2Server->new(
    mpm  => "StartServers 1\nThreadsPerChild 5\nMinSpareThreads 1\nMaxSpareThreads 10\n",
    conf => "KeepAliveTimeout 2\n",
);
$s->start;

for my $round (1 .. 2) {
    my $c = Ev2HTTP->connect(port => $s->port) or BAIL_OUT("connect: $@");
    $c->send(Ev2HTTP::request_string('GET', '/index.html'));
    my $r = $c->read_response(timeout => 10);
    ok($r && $r->{status} == 200, "round $round: first request answered");
    unlike($r ? ($r->{headers}{connection} // '') : 'close', qr/close/i,
        "round $round: response keeps the connection alive");
    my $waited = $c->wait_eof(10);
    ok(defined $waited, "round $round: server closed the idle connection within 10 s");
    if (defined $waited) {
        cmp_ok($waited, '>=', 1.5, "round $round: not before 1.5 s");
        cmp_ok($waited, '<=', 4.0, "round $round: not after 4 s");
        diag sprintf("round $round: closed after %.2f s", $waited);
    }
    is($c->{buf}, '', "round $round: no stray bytes before close");
    $c->close;
}

# A connection that keeps talking is not cut at 2 s of total age.
my $c = Ev2HTTP->connect(port => $s->port) or BAIL_OUT("connect: $@");
my $ok = 0;
my $t0 = time;
for my $i (1 .. 4) {
    $c->send(Ev2HTTP::request_string('GET', "/index.html?i=$i"));
    my $r = $c->read_response(timeout => 10);
    $ok++ if $r && $r->{status} == 200;
    select(undef, undef, undef, 1.0) if $i < 4;
}
is($ok, 4, 'four requests 1 s apart on one connection (3 s > KeepAliveTimeout in total)');
$c->close;

ok($s->stop, 'server stopped cleanly');
done_testing();

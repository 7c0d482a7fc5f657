# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# keepalive_many.t: one child with 4 worker threads holds 300 idle keep-alive
# connections without tying up its workers.  While they are idle a new client
# is served within 1 s, and afterwards every one of the 300 connections is
# still open and answers a second request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $N = 300;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 100),
    conf => <<'EOF2',
KeepAliveTimeout 60
MaxKeepAliveRequests 0
EOF2
);
$s->start;

my @kids = $s->child_pids;
is(scalar @kids, 1, 'exactly one child process') or diag "children: @kids";

# Open N connections, one request each, leave them open.
my @conns;
my $bad = 0;
for my $i (1 .. $N) {
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 10);
    unless ($c) { $bad++; diag "connect $i: $@" if $bad < 5; next }
    $c->send(Ev2HTTP::request_string('GET', "/index.html?c=$i"));
    my $r = $c->read_response(timeout => 10);
    if (!$r || $r->{status} != 200 || ($r->{headers}{connection} // '') =~ /close/i) {
        $bad++;
        diag "conn $i: " . ($r ? "status $r->{status} connection="
            . ($r->{headers}{connection} // '') : $c->{error}) if $bad < 5;
        next;
    }
    push @conns, $c;
}
is($bad, 0, "$N keep-alive connections each got a keep-alive 200");
is(scalar @conns, $N, "$N connections held open");

# mod_status sees them as idle keep-alive connections (not busy workers).
my $st;
my $seen = $s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ConnsAsyncKeepAlive} // 0) >= $N * 0.9;
}, 10, 0.25);
ok($seen, 'mod_status reports the idle connections as ConnsAsyncKeepAlive')
    or diag 'ConnsAsyncKeepAlive=' . ($st->{ConnsAsyncKeepAlive} // 'undef')
    . ' ConnsTotal=' . ($st->{ConnsTotal} // 'undef')
    . ' BusyWorkers=' . ($st->{BusyWorkers} // 'undef');

# A new client is served promptly although 300 connections are open.
my $t0 = time;
my $r = $s->get('/index.html', timeout => 10);
my $dt = time - $t0;
ok($r && $r->{status} == 200, 'new client gets 200 while 300 connections idle')
    or diag($r ? "status $r->{status}" : "error: $@");
cmp_ok($dt, '<', 1.0, 'new client served in under 1 s') or diag sprintf('took %.3f s', $dt);

# Every held connection still answers.
my ($sent, $answered, $closed) = (0, 0, 0);
for my $i (0 .. $#conns) {
    $sent++ if $conns[$i]->send(Ev2HTTP::request_string('GET', "/index.html?again=$i"));
}
for my $i (0 .. $#conns) {
    my $r2 = $conns[$i]->read_response(timeout => 15);
    if ($r2 && $r2->{status} == 200) {
        $answered++;
    }
    else {
        $closed++;
        diag "conn $i second request: " . ($r2 ? "status $r2->{status}" : $conns[$i]->{error})
            if $closed <= 5;
    }
}
is($sent, scalar @conns, 'second request written on every connection');
is($answered, scalar @conns, 'every held connection answered its second request');

$_->close for @conns;
my @kids_after = $s->child_pids;
is(scalar @kids_after, 1, 'still one child') or diag "children: @kids_after";
ok($s->stop, 'server stopped cleanly');
done_testing();

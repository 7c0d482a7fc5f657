# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_accept.t: accept4() failing in the child (t/fault/faultinj.so).
#   EMFILE, ENFILE, ENOMEM: the listener backs off instead of spinning (CPU
#     of the child stays low), each failure is logged once (a bounded number
#     of lines per second), a client that connected during the fault is
#     served once it clears, and everything works afterwards.
#   ECONNABORTED (the connection really taken and closed, as the kernel does
#     for a client that gave up): those clients see their connection
#     closed, the others are served, nothing is logged, the child stays.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2Fault;

if (my $why = Ev2Fault::unavailable()) { plan skip_all => $why }

my $f = Ev2Fault->new(mpm => Ev2Server::one_child(4));
my $s = $f->server;
$s->start;
my ($kid) = $s->child_pids;
ok($kid, "one child: $kid");

for my $err (qw(EMFILE ENFILE ENOMEM)) {
    my $mark = $f->log_size;
    my $before = $f->injected('accept4');
    $f->on("accept4:$err:pid=child");
    # A client that connects while accept fails waits in the backlog.
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5);
    ok($c && $c->send(Ev2HTTP::request_string('GET', '/index.html?during',
                                              Connection => 'close')),
       "$err: a client connects during the fault");
    my $t0 = time;
    my $cpu = Ev2Fault::cpu_share($kid, 2);
    my $window = time - $t0;
    my $n = $f->injected('accept4') - $before;
    ok($n >= 1, "$err: accept4 failed $n times");
    ok(defined $cpu && $cpu < 0.5, sprintf("$err: child does not spin (%.0f%% of a core)", 100 * ($cpu // 1)));
    $f->off;
    my $logged = $f->log_count(qr/apr_socket_accept/, $mark);
    ok($logged >= 1 && $logged <= 10 * ($window + 1),
       "$err: logged $logged times in ${\ sprintf('%.1f', $window)} s (bounded)");
    ok($logged <= $n + 1, "$err: at most one line per failure ($logged lines, $n failures)");
    my $r = $c ? $c->read_response(timeout => 10) : undef;
    is($r && $r->{status}, 200, "$err: the waiting client is served once the fault clears");
    $c->close if $c;
    is($f->count_ok(10), 10, "$err: 10 of 10 requests afterwards");
    is_deeply([$s->child_pids], [$kid], "$err: the same child still serves");
}

# ECONNABORTED: three connections taken away, the rest served.
{
    my $mark = $f->log_size;
    $f->on('accept4:ECONNABORTED:pid=child:eat:count=3');
    my @c;
    for my $i (1 .. 6) {
        my $c = Ev2HTTP->connect(port => $s->port, timeout => 5) or next;
        $c->send(Ev2HTTP::request_string('GET', "/index.html?c=$i", Connection => 'close'));
        push @c, $c;
        sleep 0.05;
    }
    my ($ok, $closed) = (0, 0);
    for my $c (@c) {
        my $r = $c->read_response(timeout => 10);
        if ($r && $r->{status} == 200) { $ok++ } elsif ($c->{eof}) { $closed++ }
        $c->close;
    }
    $f->off;
    is($ok + $closed, 6, "ECONNABORTED: each client served ($ok) or closed ($closed)");
    ok($closed <= 3 && $ok >= 3, 'ECONNABORTED: only the aborted ones are closed');
    is($f->log_count(qr/apr_socket_accept|EV2\d+/, $mark), 0, 'ECONNABORTED: nothing logged');
    is($f->count_ok(10), 10, 'ECONNABORTED: 10 of 10 requests afterwards');
    is_deeply([$s->child_pids], [$kid], 'ECONNABORTED: the same child still serves');
}

ok($s->stop, 'server stopped cleanly');
done_testing();

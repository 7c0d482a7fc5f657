# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_epoll_ctl.t: epoll_ctl() failing in the child (t/fault/faultinj.so).
#   1. Parking a connection fails (its first registration is an ADD): the
#      response is complete, the connection is closed instead of kept
#      alive, one line per failure is logged, keep-alive works again once
#      the fault clears.
#   2. Finding F1 in the notes (fixed): the ADD of the listening socket
#      fails when a new child starts.  The child used to believe it
#      accepted and never did; it must retry (or exit so that it is
#      replaced) and serve again.
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

my $f = Ev2Fault->new(mpm => Ev2Server::one_child(4), conf => "KeepAliveTimeout 10\n");
my $s = $f->server;
$s->start;
my ($kid) = $s->child_pids;
ok($kid, "one child: $kid");

# 1. Parking fails.
{
    my $mark = $f->log_size;
    $f->on('epoll_ctl:ENOMEM:pid=child:op=add');
    my ($complete, $closed) = (0, 0);
    for my $i (1 .. 5) {
        my $c = Ev2HTTP->connect(port => $s->port, timeout => 5) or next;
        $c->send(Ev2HTTP::request_string('GET', "/index.html?ka=$i"));
        my $r = $c->read_response(timeout => 10);
        $complete++ if $r && $r->{status} == 200 && $r->{body} =~ /mpm_event2 test/;
        $closed++ if defined $c->wait_eof(5);
        $c->close;
    }
    my $n = $f->injected('epoll_ctl');
    $f->off;
    is($complete, 5, 'park fails: 5 of 5 responses complete');
    is($closed, 5, 'park fails: each connection closed, not left hanging');
    ok($n >= 5, "park fails: epoll_ctl failed $n times");
    # Logged with stock's code for the state parked in (states.c's
    # park_failed texts); EV2101 is what an older build logged.
    my $logged = $f->log_count(qr/AH03093|AH03465|AH10503|AH03092|EV2101/, $mark);
    ok($logged >= 1 && $logged <= $n, "park fails: logged $logged times for $n failures");

    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5);
    my $ok = 0;
    for my $i (1 .. 2) {
        last unless $c && $c->send(Ev2HTTP::request_string('GET', "/index.html?after=$i"));
        my $r = $c->read_response(timeout => 10);
        $ok++ if $r && $r->{status} == 200;
    }
    is($ok, 2, 'park fails: keep-alive works again after the fault (2 requests, one connection)');
    $c->close if $c;
    is_deeply([$s->child_pids], [$kid], 'park fails: the same child serves');
}

# 2. The listening socket's ADD fails in a new child.  In a child the
# first ADD is the poller's eventfd, the second the listening socket.
{
    $f->on('epoll_ctl:ENOMEM:pid=child:op=add:after=1:count=1');
    ok(kill('KILL', $kid), "listener ADD fails: SIGKILL child $kid");
    my @now;
    ok($s->wait_for(sub { @now = grep { $_ != $kid } $s->child_pids; @now }, 15),
       "listener ADD fails: a new child started (@now)");
    ok($s->wait_for(sub { $f->injected('epoll_ctl') > 5 }, 10),
       'listener ADD fails: the fault hit the new child');
    $f->off;
    my $served;
    $served = $f->serves_within(15);
    ok($served, 'listener ADD fails: the server serves again within 15 s');
    if (!$served) {
        diag 'the child never accepts; killing it so the server can stop';
        kill 'KILL', $s->child_pids;
        $s->wait_for(sub { $f->serves_within(1) }, 15);
    }
}

ok($s->stop, 'server stopped cleanly');
done_testing();

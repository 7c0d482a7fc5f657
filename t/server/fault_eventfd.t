# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_eventfd.t: the write() to the listener's eventfd failing in the
# child (t/fault/faultinj.so).  Finding F3 (fixed): the failed write was
# ignored and wake_pending stayed set, so a listener asleep without a
# deadline learnt of nothing until some socket event.  Now the poller
# falls back on a signal sent to the listener thread (unblocked only in
# its epoll_pwait), and the failure is logged once (EV2091).  Without
# other traffic to the child:
#   1. an idle keep-alive connection must not outlive its KeepAliveTimeout
#      by much;
#   2. after a graceful restart, an idle old child must begin to drain and
#      leave its slot (here the only one, which the new generation needs).
# Then the fault is cleared and the server must serve again.
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

my $f = Ev2Fault->new(mpm => Ev2Server::one_child(4), conf => "KeepAliveTimeout 1\n");
my $s = $f->server;
$s->start;
my ($kid) = $s->child_pids;
ok($kid, "one child: $kid");
sleep 1.5;    # the start-up probe's connection is gone; the listener sleeps

$f->on('eventfd_write:EIO:pid=child');

# 1. Keep-alive timeout.
{
    # The request comes in two halves, so that the listener has gone back
    # to sleep (with no deadline) before the worker parks the connection.
    my $req = Ev2HTTP::request_string('GET', '/index.html');
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5);
    ok($c && $c->send(substr($req, 0, 10)), 'first half of a keep-alive request sent');
    sleep 0.5;
    ok($c && $c->send(substr($req, 10)), 'second half sent');
    my $r = $c ? $c->read_response(timeout => 10) : undef;
    is($r && $r->{status}, 200, 'response');
    my $waited = $c ? $c->wait_eof(6) : undef;
    ok($f->injected('eventfd_write') >= 1, 'the eventfd write failed');
    ok(defined $waited, 'the idle connection is closed within 6 s (KeepAliveTimeout 1)');
    $c->close if $c;
}

# 2. Graceful restart of an idle child.
{
    ok($s->graceful, 'graceful restart');
    ok($s->wait_for(sub { !Ev2Server::alive($kid) }, 10),
       "the idle old child $kid exits within 10 s");
}
{
    my $failed = $f->injected('eventfd_write');
    my @pids = $f->injected_pids('eventfd_write');
    my $logged = $f->log_count(qr/EV2091/);
    ok($logged >= 1 && $logged <= @pids,
       "logged $logged times (EV2091, once per child) for $failed failed writes in "
       . scalar(@pids) . ' children');
}

$f->off;
ok($f->serves_within(15), 'serves once the fault clears')
    or diag "children: @{[$s->child_pids]}\n" . $s->log_tail(10);
ok($s->wait_for(sub { !Ev2Server::alive($kid) }, 15), 'the old child is gone');
ok($s->stop, 'server stopped cleanly');
done_testing();

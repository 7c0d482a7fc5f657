# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_epoll_wait.t: epoll_wait() failing once in the child
# (t/fault/faultinj.so).  The listener logs it once and stops the child
# gracefully; the child is replaced and the server serves again.
#   Finding F2 (fixed): the child exits with APEXIT_CHILDSICK, and when it
#   was the only child the parent found no healthy child of the generation
#   and shut the whole server down ("... before any child process
#   initialized successfully"), although the child served for as long as
#   it ran.  The parent now remembers that the generation had a healthy
#   child, as stock does.  (With a free scoreboard slot a replacement
#   starts while the sick child drains: hence ServerLimit 1 here, a
#   single-process server.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Fault;

if (my $why = Ev2Fault::unavailable()) { plan skip_all => $why }

my $f = Ev2Fault->new(mpm => Ev2Server::one_child(4));
my $s = $f->server;
$s->start;
my ($kid) = $s->child_pids;
ok($kid, "one child: $kid");
is($f->count_ok(5), 5, 'serves before the fault');

my $mark = $f->log_size;
$f->on('epoll_wait:EBADF:pid=child:count=1');
# A request wakes the listener, whose next epoll_wait then fails.
$s->get('/index.html?wake', timeout => 5);
ok($s->wait_for(sub { $f->injected('epoll_wait') >= 1 }, 10), 'epoll_wait failed in the child');
ok($s->wait_for(sub { !Ev2Server::alive($kid) }, 15), "child $kid exited");
$f->off;
is($f->log_count(qr/EV2090/, $mark), $f->injected('epoll_wait'), 'one line per failure');
is($f->log_count(qr/Segmentation fault|exit signal/, $mark), 0, 'no crash');
sleep 3;
ok(Ev2Server::alive($s->pid), 'the parent is still running 3 s later');
ok($f->serves_within(15), 'a new child serves');
is($f->log_count(qr/EV2032|AH02324/, $mark), 0, 'no "no child could start: giving up"');

$s->stop;
pass('server stopped');
done_testing();

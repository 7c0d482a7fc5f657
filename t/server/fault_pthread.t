# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_pthread.t: pthread_create() failing while a child starts
# (t/fault/faultinj.so; the third thread of every new child, while the
# fault lasts).  Each such child logs the failure and exits cleanly (no
# crash); the parent replaces it at a bounded rate (no fork storm), the
# other child keeps serving, and once the fault clears the server is back
# to two children.
#   Part 2: a graceful restart after which no child of the new generation
# can start.  The old generation had a healthy child, which must not count
# for the new one: the parent gives up (AH02324, once) instead of forking
# replacements for ever.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Fault;

if (my $why = Ev2Fault::unavailable()) { plan skip_all => $why }

# MinSpareThreads needs both children, so the parent keeps trying.
my $f = Ev2Fault->new(mpm => <<'EOF2');
StartServers 2
ServerLimit 2
ThreadLimit 4
ThreadsPerChild 4
MaxRequestWorkers 8
MinSpareThreads 8
MaxSpareThreads 8
EOF2
my $s = $f->server;
$s->start;
my @kids;
ok($s->wait_for(sub { @kids = $s->child_pids; @kids == 2 }, 10), "two children: @kids");

my $mark = $f->log_size;
$f->on('pthread_create:EAGAIN:pid=child:after=2');
ok(kill('KILL', $kids[0]), "SIGKILL child $kids[0]");
my $t0 = time;
my $ok = $f->count_ok(20);
sleep 6 - (time - $t0) if time - $t0 < 6;
my $window = time - $t0;
my @failed = $f->injected_pids('pthread_create');
$f->off;

is($ok, 20, 'the other child serves meanwhile (20 of 20)');
ok(@failed >= 1, scalar(@failed) . ' new children could not start a thread');
ok(@failed <= 2 * $window + 3,
   sprintf('bounded rate: %d failed children in %.1f s', scalar @failed, $window));
# Stock's codes for a thread that cannot be created (worker, listener);
# EV2070 is what an older build logged.
my $logged = $f->log_count(qr/AH03104|AH00474|EV2070/, $mark);
ok($logged >= 1 && $logged <= @failed, "logged $logged times for " . scalar(@failed) . ' children');
is($f->log_count(qr/exit signal|Segmentation fault|EV2032|AH02324/, $mark), 0, 'no crash, no giving up');
ok(Ev2Server::alive($kids[1]), "child $kids[1] was left alone");

ok($s->wait_for(sub { @kids = $s->child_pids; @kids == 2 }, 20), "two children again: @kids");
is($f->count_ok(10), 10, '10 of 10 requests after the fault');
ok($s->stop, 'server stopped cleanly');

# Part 2.
{
    my $g = Ev2Fault->new(mpm => Ev2Server::one_child(4));
    my $t = $g->server;
    $t->start;
    is($g->count_ok(3), 3, 'new generation fails: one child serves first');
    my $mark = $g->log_size;
    $g->on('pthread_create:EAGAIN:pid=child:after=2');
    ok($t->graceful, 'new generation fails: graceful restart with the fault on');
    ok($t->wait_for(sub { !Ev2Server::alive($t->pid) }, 30),
       'new generation fails: the parent gives up');
    $g->off;
    my @failed = $g->injected_pids('pthread_create');
    ok(@failed >= 1 && @failed <= 5,
       scalar(@failed) . ' children of the new generation failed before it gave up');
    is($g->log_count(qr/AH02324/, $mark), 1, 'new generation fails: AH02324 logged once');
    is($g->log_count(qr/exit signal|Segmentation fault/, $mark), 0, 'new generation fails: no crash');
    ok($t->stop, 'new generation fails: nothing left running');
}
done_testing();

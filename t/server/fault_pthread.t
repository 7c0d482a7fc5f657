# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_pthread.t: pthread_create() failing while a child starts
# (t/fault/faultinj.so; the third thread of every new child, while the
# fault lasts).  Each such child logs the failure and exits cleanly (no
# crash); the parent replaces it at a bounded rate (no fork storm), the
# other child keeps serving, and once the fault clears the server is back
# to two children.
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
my $logged = $f->log_count(qr/AH03104|EV2070/, $mark);
ok($logged >= 1 && $logged <= @failed, "logged $logged times for " . scalar(@failed) . ' children');
is($f->log_count(qr/exit signal|Segmentation fault|EV2032|AH02324/, $mark), 0, 'no crash, no giving up');
ok(Ev2Server::alive($kids[1]), "child $kids[1] was left alone");

ok($s->wait_for(sub { @kids = $s->child_pids; @kids == 2 }, 20), "two children again: @kids");
is($f->count_ok(10), 10, '10 of 10 requests after the fault');
ok($s->stop, 'server stopped cleanly');
done_testing();

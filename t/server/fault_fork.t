# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_fork.t: fork() failing in the parent (t/fault/faultinj.so).  A child
# killed meanwhile cannot be replaced: the parent logs each failed fork and
# waits before trying again (make_child sleeps 10 s: no fork storm, a
# bounded number of lines), the remaining child serves, and once the fault
# clears the lost child is replaced.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Fault;

if (my $why = Ev2Fault::unavailable()) { plan skip_all => $why }

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
$f->on('fork:EAGAIN:pid=parent');
ok(kill('KILL', $kids[0]), "SIGKILL child $kids[0]");
my $t0 = time;
ok($s->wait_for(sub { $f->injected('fork') >= 1 }, 10), 'the parent tried to fork and failed');
is($f->count_ok(10), 10, 'the other child serves meanwhile');
sleep 4 - (time - $t0) if time - $t0 < 4;
my $window = time - $t0;
my $n = $f->injected('fork');
$f->off;
is_deeply([$s->child_pids], [$kids[1]], 'no child was started meanwhile');
ok($n <= $window / 10 + 2, sprintf('bounded: %d fork attempts in %.1f s', $n, $window));
# Stock's AH00481 (EV2011 in an older build).
is($f->log_count(qr/AH00481|EV2011/, $mark), $n, 'one line per failed fork');
ok(Ev2Server::alive($s->pid), 'the parent is alive');

ok($s->wait_for(sub { @kids = $s->child_pids; @kids == 2 }, 25), "replaced once fork works: @kids");
is($f->count_ok(10), 10, '10 of 10 requests after the fault');
ok($s->stop, 'server stopped cleanly');
done_testing();

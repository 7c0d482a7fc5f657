# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# surplus_threads.t: a child draining after a graceful restart keeps only
# the threads its remaining connections need.  One child with 8 workers has
# one slow download in flight; after the graceful restart the old child's
# thread count (/proc/PID/task) drops by at least 6 while the download is
# still running, and the download completes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Download;

my $SIZE = 20_000_000;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(8, ServerLimit => 4),
    conf => "Timeout 60\n",
    files => { 'big.bin' => 't' x $SIZE },
);
$s->start;

my @kids = $s->child_pids;
is(scalar @kids, 1, 'one child') or diag "children: @kids";
my $old = $kids[0];

sub threads_of {
    my $pid = shift;
    opendir my $dh, "/proc/$pid/task" or return 0;
    my $n = grep { /^\d+$/ } readdir $dh;
    closedir $dh;
    return $n;
}

# 20 MB at 2 MB/s: about 10 s in flight.
my $dl = Ev2Download->start(url => $s->url('/big.bin'), rate => '2m', max_time => 60);
sleep 1;
my $before = threads_of($old);
note "old child $old has $before threads";

ok($s->signal('USR1'), 'graceful restart (SIGUSR1)');
my $now = $before;
my $dropped = $s->wait_for(sub {
    $now = threads_of($old);
    $now > 0 && $now <= $before - 6;
}, 5, 0.1);
my $still = !$dl->done && Ev2Server::alive($old);
ok($dropped, "the draining child's thread count dropped by at least 6 ($before -> $now)");
ok($still, 'while the download was still in flight');

my $r = $dl->wait(60);
ok($r && $r->{rc} == 0 && $r->{code} == 200 && $r->{size} == $SIZE,
    "the download completed with all $SIZE bytes")
    or diag $r ? "curl exit $r->{rc}, status $r->{code}, $r->{size} bytes" : 'curl did not finish';
ok($s->wait_for(sub { !Ev2Server::alive($old) }, 10, 0.1), 'the old child exited after it');
ok($s->stop, 'server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# crash.t: a child killed with SIGKILL is replaced by a new child process and
# every request afterwards succeeds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Ev2Server;

# MinSpareThreads = 2 children worth of threads, so the parent must fork a
# replacement when one child disappears.
my $s = Ev2Server->new(mpm => <<'EOF2');
StartServers 2
ServerLimit 4
ThreadLimit 5
ThreadsPerChild 5
MaxRequestWorkers 20
MinSpareThreads 10
MaxSpareThreads 20
EOF2
$s->start;

my @kids;
ok($s->wait_for(sub { @kids = $s->child_pids; @kids >= 2 }, 10), 'two children: ' . join(',', @kids));

for my $round (1 .. 2) {
    my ($victim) = $s->child_pids;
    my %before = map { $_ => 1 } $s->child_pids;
    ok(kill('KILL', $victim), "round $round: SIGKILL child $victim");
    ok($s->wait_for(sub { !Ev2Server::alive($victim) }, 10), "round $round: child $victim died");
    my @now;
    ok($s->wait_for(sub {
        @now = $s->child_pids;
        grep { !$before{$_} } @now
    }, 30, 0.2), "round $round: a new child appeared")
        or diag "before: @{[sort keys %before]} now: @now";
    ok(Ev2Server::alive($s->pid), "round $round: parent alive");

    my ($ok, $n) = (0, 100);
    for my $i (1 .. $n) {
        my $r = $s->get("/index.html?round=$round&i=$i", timeout => 10);
        $ok++ if $r && $r->{status} == 200;
    }
    is($ok, $n, "round $round: $n of $n requests succeed after the crash");
}

ok($s->stop, 'server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# graceful_drain.t: two graceful restarts in quick succession while two
# slow downloads are in flight.  The old children keep draining in their
# scoreboard slots while new children start in free ones (ServerLimit
# leaves room): requests keep getting 200, an ab -k run sees no failure,
# both downloads complete with their full length, and the error log never
# says "scoreboard is full".
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
    mpm => <<'EOF2',
StartServers 2
ServerLimit 16
ThreadLimit 4
ThreadsPerChild 4
MaxRequestWorkers 8
MinSpareThreads 2
MaxSpareThreads 8
EOF2
    conf => "Timeout 60\n",
    files => { 'big.bin' => 'd' x $SIZE },
);
$s->start;

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen0 = $st0->{ParentServerMPMGeneration};
my %old = map { $_ => 1 } $s->child_pids;

# 20 MB at 4 MB/s: about 5 s in flight.
my @dl = map { Ev2Download->start(url => $s->url("/big.bin?dl=$_"), rate => '4m', max_time => 60) } 1 .. 2;
sleep 0.5;

ok($s->signal('USR1'), 'first graceful restart (SIGUSR1)');
sleep 0.3;
ok($s->signal('USR1'), 'second graceful restart, 0.3 s later');

my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ParentServerMPMGeneration} // -1) >= $gen0 + 2;
}, 15, 0.1), 'two generations later') or diag 'generation '
    . ($st ? $st->{ParentServerMPMGeneration} // 'undef' : 'no status') . ", was $gen0";

my @new;
ok($s->wait_for(sub { @new = grep { !$old{$_} } $s->child_pids; @new >= 1 }, 10, 0.1),
    'new children started: ' . join(',', @new));

my $good = 0;
for my $i (1 .. 20) {
    my $r = $s->get("/index.html?after=$i", timeout => 10);
    $good++ if $r && $r->{status} == 200;
}
is($good, 20, 'requests get 200 after the restarts');

my $ab = Ev2Server::run_ab($s->url('/index.html'), '-n', 2000, '-c', 4, '-k');
is($ab->{complete} // -1, 2000, 'ab -k: 2000 requests complete') or diag $ab->{output};
is($ab->{failed} // -1, 0, 'ab -k: 0 failed');
ok(!$ab->{non2xx}, 'ab -k: no non-2xx response');

my $downloads_in_flight = grep { !$_->done } @dl;
note "$downloads_in_flight downloads still in flight after the load";
for my $i (0 .. 1) {
    my $r = $dl[$i]->wait(60);
    ok($r && $r->{rc} == 0 && $r->{code} == 200 && $r->{size} == $SIZE,
        'slow download ' . ($i + 1) . " completed with all $SIZE bytes")
        or diag $r ? "curl exit $r->{rc}, status $r->{code}, $r->{size} bytes in "
            . sprintf('%.1f s', $r->{secs}) : 'curl did not finish within 60 s';
}

unlike($s->log_text, qr/scoreboard is full/i, 'no "scoreboard is full" in the error log')
    or diag $s->log_tail(20);
ok($s->stop, 'server stopped cleanly');
done_testing();

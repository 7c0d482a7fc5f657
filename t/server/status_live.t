# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# status_live.t: mod_status sees the MPM's connection states live.  Two
# children hold 50 idle keep-alive connections between them;
# /server-status?auto then reports ConnsTotal >= 45 and
# ConnsAsyncKeepAlive >= 45, and once the clients close them both drop back.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $N = 50;

my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 2
ServerLimit 2
ThreadLimit 4
ThreadsPerChild 4
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
AsyncRequestWorkerFactor 100
EOF2
    conf => <<'EOF2',
KeepAliveTimeout 30
MaxKeepAliveRequests 0
EOF2
);
$s->start;

my @conns;
for my $i (1 .. $N) {
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 10) or next;
    $c->send(Ev2HTTP::request_string('GET', "/index.html?c=$i"));
    my $r = $c->read_response(timeout => 10);
    push @conns, $c if $r && $r->{status} == 200;
}
is(scalar @conns, $N, "$N idle keep-alive connections open");

sub show {
    my $st = shift or return 'no status';
    return join ' ', map { "$_=" . ($st->{$_} // 'undef') }
        qw(ConnsTotal ConnsAsyncKeepAlive ConnsAsyncWriting ConnsAsyncClosing
           BusyWorkers IdleWorkers);
}

my $st;
my $ok = $s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ConnsTotal} // 0) >= $N - 5 && ($st->{ConnsAsyncKeepAlive} // 0) >= $N - 5;
}, 10, 0.25);
ok($ok, 'ConnsTotal >= ' . ($N - 5) . ' and ConnsAsyncKeepAlive >= ' . ($N - 5))
    or diag show($st);
note show($st);

$_->close for @conns;
$ok = $s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ConnsTotal} // 99) <= 2 && ($st->{ConnsAsyncKeepAlive} // 99) == 0;
}, 10, 0.25);
ok($ok, 'after the clients closed: ConnsTotal <= 2 and ConnsAsyncKeepAlive 0')
    or diag show($st);

ok($s->stop, 'server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# wstunnel.t: WebSocket through mod_proxy_wstunnel (ProxyPass ws://) to an
# echo backend started by the test.  One tunnel echoes 100 messages; then 20
# tunnels are open at once, each echoes, and plain GET requests are served
# alongside.  In 2.4 a tunnel holds a worker thread for its whole life, so
# mod_status counts 20 busy workers while they are open, and the workers come
# back when the tunnels close.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2WS;

my $T = 20;

my $be = Ev2WS::Backend->start(max_time => 300);
my $bport = $be->port;

my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 1
ServerLimit 2
ThreadLimit 32
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
EOF2
    conf => <<"EOF2",
ProxyPass /ws ws://127.0.0.1:$bport/
ProxyWebsocketFallbackToProxyHttp On
Timeout 30
EOF2
    modules => [qw(proxy proxy_http proxy_wstunnel)],
);
$s->start;

# The backend answers a plain request through the proxy too.
my $plain = $s->get('/ws', timeout => 10);
ok($plain && $plain->{status} == 200 && $plain->{body} eq "backend ok\n",
    'plain GET /ws is proxied to the backend')
    or diag($plain ? "status $plain->{status}" : "error: $@");

# One tunnel, 100 messages.
my $ws = Ev2WS::Client->connect(port => $s->port, path => '/ws', timeout => 10);
ok($ws, 'WebSocket handshake through the proxy (101, accept key checked)')
    or diag "handshake: $@\n" . $s->log_tail;
my $echoed = 0;
if ($ws) {
    for my $i (1 .. 100) {
        my $msg = "message $i " . ('x' x ($i * 7));
        if ($ws->echo($msg, 10)) { $echoed++ }
        else { diag "message $i: $ws->{error}"; last }
    }
    $ws->close;
}
is($echoed, 100, '100 messages echoed over one tunnel');

# 20 tunnels at once.
my @t;
my $hs_fail = 0;
for my $i (1 .. $T) {
    my $c = Ev2WS::Client->connect(port => $s->port, path => '/ws', timeout => 10);
    if ($c) { push @t, $c } else { $hs_fail++; diag "tunnel $i: $@" if $hs_fail <= 3 }
}
is(scalar @t, $T, "$T tunnels open at once");
for my $i (0 .. $#t) { $t[$i]->send_text("hello from tunnel $i") }
my $ok = 0;
for my $i (0 .. $#t) {
    my ($op, $p) = $t[$i]->recv_frame(10);
    if (defined $op && $op == 1 && $p eq "hello from tunnel $i") { $ok++ }
    else { diag "tunnel $i: " . ($t[$i]{error} // "op $op") }
}
is($ok, scalar @t, 'every tunnel echoed its message');

# Each tunnel holds a worker; plain requests are still served.
my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{BusyWorkers} // 0) >= $T;
}, 10, 0.2), "mod_status counts the $T tunnels as busy workers")
    or diag 'BusyWorkers=' . ($st ? $st->{BusyWorkers} // 'undef' : 'no status');
my $gets = 0;
for my $i (1 .. 10) {
    my $r = $s->get("/index.html?i=$i", timeout => 10);
    $gets++ if $r && $r->{status} == 200;
}
is($gets, 10, 'GET requests served (200) while the tunnels are open');

$ok = 0;
for my $i (0 .. $#t) { $ok++ if $t[$i]->echo("again $i", 10) }
is($ok, scalar @t, 'every tunnel still echoes afterwards');
$_->close for @t;

ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{BusyWorkers} // 99) <= 2;
}, 15, 0.2), 'workers are released when the tunnels close')
    or diag 'BusyWorkers=' . ($st ? $st->{BusyWorkers} // 'undef' : 'no status');

unlike($s->log_text, qr/AH00052|AH00060|Segmentation fault|exit signal/,
    'no child crashed');
ok($s->stop, 'server stopped cleanly');
$be->stop;
done_testing();

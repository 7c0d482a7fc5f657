# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# reqtimeout.t: mod_reqtimeout's header timeout works on top of the MPM.  A
# client that sends a request line and then nothing gets a 408 and the
# connection closed within the configured 2-4 s (not after Timeout), the
# error log says AH01382 "Request header read timeout" and the access log
# records the 408.
#
# Then per virtual host: RequestReadTimeout inside an address-based
# <VirtualHost> (one shorter, one longer than the main server's) sets the
# header timeout of connections to that address, as mod_reqtimeout does
# with c->base_server; the listener's wait for the header follows it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => <<'EOF2',
Timeout 30
RequestReadTimeout header=2-4,MinRate=500 body=5,MinRate=500
LogLevel info
EOF2
    modules => ['reqtimeout'],
);
$s->start;

my $c = Ev2HTTP->connect(port => $s->port) or die $@;
my $t0 = time;
ok($c->send("GET / HTTP/1.1\r\n"), 'request line sent, then nothing');
my $r = $c->read_response(timeout => 15);
my $t_resp = time - $t0;
my $waited = $c->wait_eof(10);
my $t_close = time - $t0;
$c->close;

ok($r, sprintf('a response arrived (after %.2f s)', $t_resp))
    or diag 'no response: ' . ($c->{error} // '?');
is($r ? $r->{status} : undef, 408, 'it is 408 Request Timeout');
ok(defined $waited, sprintf('the server closed the connection (at %.2f s)', $t_close));
ok($t_close >= 1.5 && $t_close <= 4.5,
    sprintf('within the header timeout (2-4 s), not Timeout: %.2f s', $t_close));

my $log = '';
ok($s->wait_for(sub { ($log = $s->log_text) =~ /(?:AH01382|EV2085): Request header read timeout/ }, 10, 0.1),
    'error log: Request header read timeout (AH01382, or EV2085 where the listener timed it)') or diag $s->log_tail;

my $alog = '';
ok($s->wait_for(sub {
    open my $fh, '<', $s->dir . '/logs/access_log' or return 0;
    local $/;
    $alog = <$fh> // '';
    $alog =~ /"GET \/ HTTP\/1\.1" 408 /;
}, 10, 0.1), 'access log records the 408') or diag "access_log:\n$alog";

my $ok = $s->get('/index.html', timeout => 10);
ok($ok && $ok->{status} == 200, 'a normal request is still served');

ok($s->stop, 'server stopped cleanly');

# ---- per virtual host ------------------------------------------------------
my ($p_short, $p_long) = (Ev2Server::free_port(), Ev2Server::free_port());
$p_long = Ev2Server::free_port() while $p_long == $p_short;
my $v = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => <<"EOF2",
Timeout 30
RequestReadTimeout header=5 body=10
LogLevel info
Listen 127.0.0.1:$p_short
Listen 127.0.0.1:$p_long
<VirtualHost 127.0.0.1:$p_short>
    RequestReadTimeout header=2
</VirtualHost>
<VirtualHost 127.0.0.1:$p_long>
    <IfModule reqtimeout_module>
        RequestReadTimeout header=9
    </IfModule>
</VirtualHost>
EOF2
    modules => ['reqtimeout'],
);
$v->start;

# A request line and then nothing, on each address at once; when each is
# answered and closed.
my %want = (main => [$v->port, 4.5, 7.5], short => [$p_short, 1.5, 4.5],
            long => [$p_long, 8.5, 13]);
my %c;
my $t1 = time;
for my $k (sort keys %want) {
    $c{$k} = Ev2HTTP->connect(port => $want{$k}[0]) or die $@;
    $c{$k}->send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
}
my %closed;
for my $k (sort { $want{$a}[1] <=> $want{$b}[1] } keys %want) {
    my $r = $c{$k}->read_response(timeout => 20 - (time - $t1));
    my $eof = $c{$k}->wait_eof(5);
    $closed{$k} = time - $t1;
    is($r ? $r->{status} : undef, 408, "$k: 408 Request Timeout");
    ok(defined $eof, "$k: closed");
    my ($lo, $hi) = @{$want{$k}}[1, 2];
    ok($closed{$k} >= $lo && $closed{$k} <= $hi,
        sprintf('%s: closed after %.2f s, within %.1f-%.1f s', $k, $closed{$k}, $lo, $hi));
    $c{$k}->close;
}
ok($v->stop, 'server with vhosts stopped cleanly');
done_testing();

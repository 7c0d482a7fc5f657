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
#
# Then the body: a POST whose header is whole but whose body stops coming
# is answered 408 and closed when RequestReadTimeout's body= runs out
# (counted from the end of the header), not when header= would, also for
# a body the MPM holds in the listener; a vhost's own body= applies to its
# address; a body that keeps coming at the MinRate is not cut off past the
# base time, and is answered as the same POST sent at once.
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
# Each connection of %$want (name => [port, earliest, latest]) in %$conns
# gets a 408 and is closed between its earliest and latest second after t0.
sub expect_408_closed {
    my ($want, $conns, $t0, $what) = @_;
    for my $k (sort { $want->{$a}[1] <=> $want->{$b}[1] } keys %$want) {
        my $r = $conns->{$k}->read_response(timeout => 20 - (time - $t0));
        my $eof = $conns->{$k}->wait_eof(5);
        my $at = time - $t0;
        is($r ? $r->{status} : undef, 408, "$what$k: 408 Request Timeout");
        ok(defined $eof, "$what$k: closed");
        my ($lo, $hi) = @{$want->{$k}}[1, 2];
        ok($at >= $lo && $at <= $hi,
            sprintf('%s%s: closed after %.2f s, within %.1f-%.1f s', $what, $k, $at, $lo, $hi));
        $conns->{$k}->close;
    }
}
expect_408_closed(\%want, \%c, $t1, '');
ok($v->stop, 'server with vhosts stopped cleanly');

# ---- the body ---------------------------------------------------------------
my $p_body = Ev2Server::free_port();
my $bs = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => <<"EOF2",
Timeout 30
RequestReadTimeout header=15 body=3
LogLevel info
Listen 127.0.0.1:$p_body
<VirtualHost 127.0.0.1:$p_body>
    RequestReadTimeout body=5,MinRate=50
</VirtualHost>
EOF2
    modules => ['reqtimeout'],
);
$bs->start;

sub post_head {
    my ($len) = @_;
    return "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         . "Content-Length: $len\r\n\r\n";
}

# The answer to the same POST with its body sent at once: what a body that
# arrives in time must get too.
my $whole = Ev2HTTP->connect(port => $p_body) or die $@;
$whole->send(post_head(600) . ('b' x 600));
my $r_whole = $whole->read_response(timeout => 10);
$whole->close;
ok($r_whole && $r_whole->{status} != 408,
   'a POST sent at once is answered (' . ($r_whole ? $r_whole->{status} : 'nothing') . ')');

# Header and 10 body bytes of 100, then nothing: main body=3, vhost body=5
# (+ 10 bytes at 50 B/s).
my %bwant = (main => [$bs->port, 2.5, 6.5], vhost => [$p_body, 4.5, 8.5]);
my %bc;
my $t2 = time;
for my $k (sort keys %bwant) {
    $bc{$k} = Ev2HTTP->connect(port => $bwant{$k}[0]) or die $@;
    $bc{$k}->send(post_head(100) . ('x' x 10));
}
# (body=, not header=15)
expect_408_closed(\%bwant, \%bc, $t2, 'body ');
my $blog = '';
ok($bs->wait_for(sub { ($blog = $bs->log_text) =~ /(?:AH01382|EV2104): Request body read timeout/ }, 10, 0.1),
    'error log: Request body read timeout (AH01382, or EV2104 where the listener timed it)') or diag $bs->log_tail;

# 600 bytes, 100 a second, to the vhost (body=5,MinRate=50: the time grows
# by 2 s a second): answered as the POST sent at once, after 6 s.
my $slow = Ev2HTTP->connect(port => $p_body) or die $@;
my $t3 = time;
$slow->send(post_head(600));
for (1 .. 6) {
    sleep 1;
    $slow->send('b' x 100);
}
my $r_slow = $slow->read_response(timeout => 10);
my $t_slow = time - $t3;
$slow->close;
is($r_slow ? $r_slow->{status} : undef, $r_whole ? $r_whole->{status} : -1,
   sprintf('a body kept coming at the MinRate is not cut off past body=5 (answered at %.2f s)', $t_slow));
ok($t_slow >= 5.5, 'it was answered once the whole body had arrived');

ok($bs->stop, 'server for the body stopped cleanly');
done_testing();

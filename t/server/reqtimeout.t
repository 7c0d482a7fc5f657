# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# reqtimeout.t: mod_reqtimeout's header timeout works on top of the MPM.  A
# client that sends a request line and then nothing gets a 408 and the
# connection closed within the configured 2-4 s (not after Timeout), the
# error log says AH01382 "Request header read timeout" and the access log
# records the 408.
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
ok($t_close >= 1.5 && $t_close <= 6.5,
    sprintf('within the header timeout (2-4 s), not Timeout: %.2f s', $t_close));

my $log = '';
ok($s->wait_for(sub { ($log = $s->log_text) =~ /AH01382: Request header read timeout/ }, 10, 0.1),
    'error log: AH01382 Request header read timeout') or diag $s->log_tail;

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
done_testing();

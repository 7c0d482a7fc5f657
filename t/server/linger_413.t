# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# linger_413.t: lingering close.  A client POSTs a 20 MB body to a location
# with LimitRequestBody 1000, writing without blocking and reading while it
# writes.  The 413 status arrives while the body is still being sent, and
# the client reads the whole 413 response before any reset: the server
# drains what the client keeps sending instead of closing under it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use Time::HiRes qw(time sleep);
use Ev2Server;

my $TOTAL = 20_000_000;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => <<'EOF2',
Timeout 30
<Location /limited>
    LimitRequestBody 1000
</Location>
EOF2
    files => { 'limited/index.html' => "limited\n" },
);
$s->start;

my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port,
    Proto => 'tcp', Timeout => 10) or BAIL_OUT("connect: $!");
$sock->blocking(0);
local $SIG{PIPE} = 'IGNORE';

my $head = "POST /limited/index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    . "Content-Type: application/octet-stream\r\nContent-Length: $TOTAL\r\n\r\n";
my $chunk = 'b' x 65536;
my $req_len = length($head) + $TOTAL;
my $out = $head;            # bytes queued, not yet written
my $queued = length $head;  # bytes ever queued
my $written = 0;            # bytes written to the socket
my $in = '';
my ($sent_at_status, $status_line, $complete);
my ($err, $err_complete);   # first read/write error, and whether the response was complete then
my $eof;
my $t0 = time;
my $deadline = $t0 + 60;
my $t_complete;
sub body_sent { my $b = $written - length $head; $b < 0 ? 0 : $b }

my $rsel = IO::Select->new($sock);
while (time < $deadline && !$eof && !$err) {
    # After the full response: stop sending and wait (bounded) for the close.
    last if $complete && time - $t_complete > 15;
    my $sending = !$complete && $written < $req_len;
    my $wsel = IO::Select->new($sending ? ($sock) : ());
    my ($r, $w) = IO::Select->select($rsel, $wsel, undef, 0.5);
    if ($w && @$w) {
        while (length $out < 65536 && $queued < $req_len) {
            my $k = $req_len - $queued;
            $k = length $chunk if $k > length $chunk;
            $out .= substr($chunk, 0, $k);
            $queued += $k;
        }
        my $n = syswrite($sock, $out);
        if (defined $n) {
            substr($out, 0, $n, '');
            $written += $n;
        }
        elsif (!($! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK)) {
            ($err, $err_complete) = ("write: $!", $complete ? 1 : 0);
        }
    }
    if ($r && @$r) {
        my $n = sysread($sock, my $buf, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            ($err, $err_complete) = ("read: $!", $complete ? 1 : 0);
        }
        elsif ($n == 0) {
            $eof = 1;
            # A response without Content-Length ends with the connection.
            if (!$complete && (my $he = index($in, "\r\n\r\n")) >= 0) {
                my $h = substr($in, 0, $he);
                if ($h !~ /^Content-Length:/mi && $h !~ /^Transfer-Encoding:/mi) {
                    $complete = 1;
                    $t_complete = time;
                }
            }
        }
        else {
            $in .= $buf;
            if (!defined $status_line && $in =~ m{^(HTTP/\d\.\d \d{3}[^\r\n]*)\r\n}) {
                $status_line = $1;
                $sent_at_status = body_sent();
            }
            if (!$complete && (my $he = index($in, "\r\n\r\n")) >= 0) {
                my ($cl) = substr($in, 0, $he) =~ /^Content-Length:\s*(\d+)/mi;
                if (defined $cl && length($in) >= $he + 4 + $cl) {
                    $complete = 1;
                    $t_complete = time;
                }
            }
        }
    }
}
my $t_end = time;
close $sock;

like($status_line // '', qr{^HTTP/1\.1 413 }, 'got the HTTP/1.1 413 status line')
    or diag 'got: ' . substr($in, 0, 200);
ok(defined $sent_at_status && $sent_at_status < $TOTAL,
    'the 413 arrived while the body was still being sent')
    or diag 'body bytes sent when the status arrived: ' . ($sent_at_status // 'never');
ok($complete, 'the whole 413 response (head and body) was read')
    or diag "read " . length($in) . " bytes: " . substr($in, 0, 300) . "; first error: " . ($err // "none")
        . '; eof: ' . ($eof ? 'yes' : 'no');
ok(!$err || $err_complete, 'no reset before the full 413 response was read')
    or diag "error: $err";
ok($eof || ($err && $err_complete), 'the server closed the connection after the response')
    or diag 'still open ' . sprintf('%.1f', $t_end - ($t_complete // $t0)) . ' s after the response';
note sprintf('413 after %.1f MB sent; %s %.2f s after the response',
    ($sent_at_status // 0) / 1e6, $eof ? 'clean EOF' : ($err // 'no close'),
    $t_end - ($t_complete // $t_end));

# The server is fine afterwards.
my $r = $s->get('/index.html');
ok($r && $r->{status} == 200, 'server still serves');
ok($s->stop, 'server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# dialup.t: mod_dialup, the in-tree user of ap_mpm_register_timed_callback,
# sends a 60-byte file at V.21 speed by suspending the request and asking the
# MPM to call it back a second later, again and again.  With no other traffic
# the timed callbacks must fire on time: the whole file arrives in a few
# seconds, in pieces spread over that time.  (Stock event only runs its
# timers when the listener wakes up for something else, so the response
# stalls until another request arrives.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $body = join('', map { chr(ord('a') + $_ % 26) } 0 .. 58) . "\n";
die 'fixture size' unless length $body == 60;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => <<'EOF2',
<Location /d60.txt>
    ModemStandard V.21
</Location>
EOF2
    modules => ['dialup'],
    files => { 'd60.txt' => $body },
);
$s->start;
# Let the start-up probe's connection finish so nothing else is in flight.
sleep 0.5;

# curl, bounded: 200 and all 60 bytes in roughly 3-8 s.
my ($rc, $out) = Ev2Server::run_cmd(['curl', '-sS', '-m', '15', '-o', $s->dir . '/curl.out',
    '-w', '%{http_code} %{size_download} %{time_total}', $s->url('/d60.txt')]);
my ($code, $size, $total) = ($out // '') =~ /(\d{3}) (\d+) ([\d.]+)\s*\z/;
is($rc, 0, 'curl completed within 15 s') or diag "curl exit $rc: $out";
is($code // '', '200', 'status 200');
is($size // -1, 60, 'all 60 bytes received');
my $got = do { open my $fh, '<', $s->dir . '/curl.out' or die; local $/; <$fh> } // '';
is($got, $body, 'body intact');
ok(defined $total && $total >= 1.5 && $total <= 10,
    'transfer took a few seconds (modem speed, timers firing): ' . ($total // 'undef') . ' s');

# Raw reader: when do the bytes arrive?  It stops at the end of the body
# (Content-Length), not at EOF: in 2.4 a suspended connection is never handed
# back to the MPM (no ap_mpm_resume_suspended), so the server does not close
# it after the response, Connection: close or not.
sleep 0.5;
my $c = Ev2HTTP->connect(port => $s->port) or die $@;
my $t0 = time;
$c->send(Ev2HTTP::request_string('GET', '/d60.txt', Connection => 'close'));
my $sel = IO::Select->new($c->socket);
my ($buf, @arrivals, $eof) = ('');
my $deadline = $t0 + 15;
while (time < $deadline) {
    last unless $sel->can_read($deadline - time);
    my $n = sysread($c->socket, my $chunk, 65536);
    if (!$n) { $eof = 1; last }
    $buf .= $chunk;
    push @arrivals, [time - $t0, length $buf];
    my $he = index($buf, "\r\n\r\n");
    last if $he >= 0 && $buf =~ /^Content-Length:\s*(\d+)/mi
        && length($buf) >= $he + 4 + $1;
}
$c->close;
my $hend = index($buf, "\r\n\r\n");
my $rbody = $hend >= 0 ? substr($buf, $hend + 4) : '';
like($buf, qr/^Content-Length:\s*60\r?$/mi, 'raw client: Content-Length 60');
like($buf, qr{^HTTP/1\.1 200 }, 'raw client: status 200');
is($rbody, $body, 'raw client: all 60 bytes');
my ($first_body) = grep { $_->[1] > $hend + 4 } @arrivals;
my $last = $arrivals[-1];
my $trace = join(' ', map { sprintf('%.2fs:%d', @$_) } @arrivals);
ok($first_body && $last && $last->[0] - $first_body->[0] >= 1.0,
    'bytes arrive progressively, not all at the end') or diag "arrivals: $trace";
ok($last && $last->[0] >= 1.5 && $last->[0] <= 10, 'last byte after a few seconds')
    or diag "arrivals: $trace";
note "arrivals (time:bytes so far): $trace";

ok($s->stop, 'server stopped cleanly');
done_testing();

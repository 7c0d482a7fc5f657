# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# graceful_waiting.t: a request still arriving when its child stops
# gracefully is not dropped.  A header trickled and a POST whose body is
# still on its way both wait in the listener (no worker); a graceful
# restart and then a graceful-stop come while they wait; each is answered
# 200 once its last bytes arrive, as stock's worker, blocked reading them,
# would answer.  (The soak found such requests cut at graceful stops.)
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
    conf => "Timeout 30\n",
);
$s->start;

for my $event (qw(graceful graceful_stop)) {
    my $hdr = Ev2HTTP->connect(port => $s->port) or die $@;
    my $post = Ev2HTTP->connect(port => $s->port) or die $@;
    $hdr->send("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    $post->send("POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                . "Content-Length: 20\r\n\r\n" . ('p' x 5));
    sleep 0.5;
    ok($s->$event, "$event while a header and a body are on their way");
    # Well past the moment a stopping child closes its idle connections.
    sleep 1.5;
    $hdr->send("Connection: close\r\n\r\n");
    $post->send('p' x 15);
    my $rh = $hdr->read_response(timeout => 10);
    my $rp = $post->read_response(timeout => 10);
    is($rh ? $rh->{status} : undef, 200, "$event: the trickled header is answered 200")
        or diag 'header: ' . ($hdr->{error} // '?');
    is($rp ? $rp->{status} : undef, 200, "$event: the POST whose body came late is answered 200")
        or diag 'post: ' . ($post->{error} // '?');
    $hdr->close;
    $post->close;
    if ($event eq 'graceful_stop') {
        last;
    }
    my $ok = $s->get('/index.html', timeout => 10);
    ok($ok && $ok->{status} == 200, 'the new generation serves');
}
ok($s->stop, 'server stopped cleanly');
done_testing();

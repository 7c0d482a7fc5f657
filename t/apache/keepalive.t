# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# keepalive.t: sequential requests reuse one connection (every response
# keeps it alive and all arrive on the same socket); "Connection: close" and
# an HTTP/1.0 request without keep-alive end the connection after the
# response.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Apache::Test;
use Apache::TestUtil;
use Apache::TestRequest ();
use Ev2HTTP ();

my $N = 10;
plan tests => $N + 6;

my ($port) = Apache::TestRequest::hostport() =~ /:(\d+)$/;

my $c = Ev2HTTP->connect(port => $port) or die "connect: $@";
for my $i (1 .. $N) {
    $c->send(Ev2HTTP::request_string('GET', "/index.html?seq=$i"));
    my $r = $c->read_response(timeout => 10);
    ok t_cmp($r && $r->{status} == 200 && ($r->{headers}{connection} // '') !~ /close/i ? 1 : 0,
        1, "request $i of $N answered on the same connection, kept alive");
}
$c->send(Ev2HTTP::request_string('GET', '/index.html', Connection => 'close'));
my $r = $c->read_response(timeout => 10);
ok t_cmp($r ? $r->{status} : 'none', 200, 'Connection: close request answered');
ok t_cmp($r ? lc($r->{headers}{connection} // '') : '', 'close', 'response says Connection: close');
ok t_cmp(defined $c->wait_eof(10) ? 1 : 0, 1, 'server closed the connection after it');
$c->close;

$c = Ev2HTTP->connect(port => $port) or die "connect: $@";
$c->send("GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
$r = $c->read_response(timeout => 10);
ok t_cmp($r ? $r->{status} : 'none', 200, 'HTTP/1.0 request answered');
ok t_cmp(defined $c->wait_eof(10) ? 1 : 0, 1, 'HTTP/1.0 without keep-alive: connection closed');
ok t_cmp(length $c->{buf}, 0, 'nothing after the response');
$c->close;

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# keepalive_timeout_vhost.t: a virtual host's own KeepAliveTimeout (2 s)
# applies to its connections although the main server's is 5 s: the idle
# connection is closed between 1.5 and 4 s after the response.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Apache::Test;
use Apache::TestUtil;
use Apache::TestRequest ();
use Ev2HTTP ();

plan tests => 5;

Apache::TestRequest::module('keepalive_vhost');
my ($port) = Apache::TestRequest::hostport() =~ /:(\d+)$/;
Apache::TestRequest::module('default');

my $c = Ev2HTTP->connect(port => $port) or die "connect: $@";
ok $c->send(Ev2HTTP::request_string('GET', '/index.html'));
my $r = $c->read_response(timeout => 10);
ok t_cmp($r ? $r->{status} : 'none', 200, 'request on the vhost');
my $waited = $c->wait_eof(10);
ok defined $waited;
t_debug(sprintf 'closed after %.2f s', $waited // -1);
ok t_cmp(($waited // 99) >= 1.5 ? 1 : 0, 1, 'not closed before 1.5 s');
ok t_cmp(($waited // 99) <= 4.0 ? 1 : 0, 1, 'closed by 4 s (vhost KeepAliveTimeout 2, not 5)');

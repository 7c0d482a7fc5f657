# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# basic.t: the default server answers GET and HEAD for a static file, 404
# for a missing one, and mod_status names the MPM under test (event2).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Apache::Test;
use Apache::TestUtil;
use Apache::TestRequest qw(GET HEAD);
use Ev2Server ();

plan tests => 12;

my $r = GET '/index.html';
ok t_cmp($r->code, 200, 'GET /index.html');
ok t_cmp($r->content, qr/mod_mpm_event2 default test page/, 'body of /index.html');

$r = GET '/';
ok t_cmp($r->code, 200, 'GET / (DirectoryIndex)');
ok t_cmp($r->content, qr/mod_mpm_event2 default test page/, 'body of /');

my $len = length GET('/index.html')->content;
$r = HEAD '/index.html';
ok t_cmp($r->code, 200, 'HEAD /index.html');
ok t_cmp(length($r->content), 0, 'HEAD has no body');
ok t_cmp($r->header('Content-Length'), $len, 'HEAD Content-Length matches GET body');

$r = GET '/no/such/file.html';
ok t_cmp($r->code, 404, 'GET of a missing file is 404');

$r = GET '/server-status?auto';
ok t_cmp($r->code, 200, '/server-status?auto');
my $expect = Ev2Server::mpm_name();
ok t_cmp($r->content, qr/^ServerMPM: \Q$expect\E$/m, "ServerMPM: $expect");
ok t_cmp($r->content, qr/^Processes: [1-9]/m, 'at least one process reported');

$r = GET '/server-status';
ok t_cmp($r->code, 200, 'HTML /server-status');

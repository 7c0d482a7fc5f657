# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# ab.t: ApacheBench runs against the default server, with keep-alive
# (-n 2000 -c 4 -k) and without (-n 2000 -c 20), complete every request
# with no failure and no non-2xx response.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Apache::Test;
use Apache::TestUtil;
use Apache::TestRequest ();
use Ev2Server ();

plan tests => 8, need { 'ab (apache2-utils) is installed' => -x '/usr/bin/ab' };

my $hostport = Apache::TestRequest::hostport();
my ($port) = $hostport =~ /:(\d+)$/;
my $url = "http://127.0.0.1:$port/index.html";

for my $opts (['-n', 2000, '-c', 4, '-k'], ['-n', 2000, '-c', 20]) {
    my $label = "ab @$opts";
    my $r = Ev2Server::run_ab($url, @$opts);
    ok t_cmp($r->{rc}, 0, "$label: exit status") or t_debug($r->{output});
    ok t_cmp($r->{complete}, 2000, "$label: Complete requests");
    ok t_cmp($r->{failed}, 0, "$label: Failed requests") or t_debug($r->{output});
    ok t_cmp($r->{non2xx}, undef, "$label: no Non-2xx responses");
}

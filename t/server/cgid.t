# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# cgid.t: mod_cgid runs CGI scripts through its daemon, an APR "other child"
# of the parent.  A shell CGI answers with its QUERY_STRING; after a graceful
# restart (new generation, new cgid daemon) it still answers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(time sleep);
use Ev2Server;

my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 1
ServerLimit 2
ThreadsPerChild 10
MaxRequestWorkers 20
MinSpareThreads 5
MaxSpareThreads 20
EOF2
    modules => [qw(alias cgid)],
);
my $d = $s->dir;
make_path("$d/cgi-bin");
chmod 0755, "$d/cgi-bin";
open my $fh, '>', "$d/cgi-bin/qs.sh" or die "write qs.sh: $!";
print $fh <<'EOF2';
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'qs=%s pid=%s\n' "$QUERY_STRING" "$$"
EOF2
close $fh;
chmod 0755, "$d/cgi-bin/qs.sh";
$s->{conf} = <<"EOF2";
ScriptAlias /cgi/ "$d/cgi-bin/"
ScriptSock "$d/run/cgid.sock"
<Directory "$d/cgi-bin">
    Require all granted
</Directory>
EOF2
$s->write_config;
$s->start;

sub cgi {
    my $q = shift;
    my $r = $s->get("/cgi/qs.sh?$q", timeout => 15);
    return $r if $r;
    return { status => 0, body => "error: $@" };
}

my $r = cgi('a=1&b=two');
is($r->{status}, 200, 'CGI answers 200');
like($r->{body}, qr/^qs=a=1&b=two pid=\d+$/m, 'CGI body shows its QUERY_STRING')
    or diag $r->{body};
is(cgi("n=$_")->{body} =~ /^qs=n=$_ /m ? 1 : 0, 1, "request $_ answered") for 1 .. 3;

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen0 = $st0->{ParentServerConfigGeneration};
my @kids0 = $s->child_pids;

ok($s->graceful, 'apache2 -k graceful accepted');
my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ParentServerConfigGeneration} // -1) > $gen0;
}, 20, 0.2), 'new generation after the graceful restart')
    or diag 'ParentServerConfigGeneration=' . ($st ? $st->{ParentServerConfigGeneration} // 'undef' : 'no status');

# The CGI answers in the new generation (the cgid daemon was restarted).
my $after = cgi('after=graceful');
is($after->{status}, 200, 'CGI answers 200 right after the graceful restart')
    or diag "$after->{body}\n" . $s->log_tail;
like($after->{body}, qr/^qs=after=graceful pid=\d+$/m, 'with the right body');
is(cgi("again=$_")->{body} =~ /^qs=again=$_ /m ? 1 : 0, 1, "request $_ after the restart answered")
    for 1 .. 3;

ok(Ev2Server::alive($s->pid), 'parent alive');
unlike($s->log_text, qr/AH00052|AH00060|Segmentation fault|exit signal/,
    'no child crashed');
ok($s->stop, 'server stopped cleanly');
done_testing();

# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# buckets.t: several listener buckets (ListenCoresBucketsRatio).
#
# httpd's ap_duplicate_listeners() (server/listen.c) makes
# online CPUs / ListenCoresBucketsRatio buckets when that is above 1 and
# SO_REUSEPORT exists, else one; buckets 1.. are new SO_REUSEPORT sockets
# bound to the same address, and the MPM gives child slot i bucket
# i % buckets.  The kernel spreads new connections over the sockets of a
# reuseport group by a hash of the 4-tuple, so a connection that lands in
# one bucket's socket can only be accepted by that bucket's children.  The
# directive is global only and rejects 0; without it there is one bucket.
# (httpd logs the bucket count, AH02819, at info with no server, which
# goes below the default log level and never reaches the error log, so
# the test counts sockets instead.)
#
# On this 2-CPU machine the ratio is 1 and there are 2 buckets; on a bigger
# one the ratio is CPUs/2 (2 or 3 buckets), with one child per bucket.
# With 1 online CPU no ratio gives two buckets: the test then checks the
# single bucket and skips the rest, saying so.
#
# What it checks (a client's view, mod_status and /proc):
#   1. the kernel has one LISTEN socket per bucket on the port, every child
#      holds exactly one of them and the children of different buckets
#      different ones;
#   2. 40 keep-alive connections (distinct source ports) held open spread
#      over every bucket's child: each holds some of them (its descriptors
#      against /proc/net/tcp), has connections > 0 in mod_status (Event2SlotN
#      lines; for stock the per-process table, TODO: stock refreshes it only
#      at queue expiry) and served some of them (access log %{pid}P).  All 40 hashed into one of two
#      sockets has a chance of 2^-39 (and less with 3 buckets).  (Children
#      sharing one bucket could spread connections too: the socket count
#      of 1. is what tells the buckets apart, 2. that each is served.)
#   3. a graceful restart with those connections held: each is closed
#      cleanly (EOF) or answers a request, the old children exit, the new
#      generation has one child per bucket holding one socket each, and 40
#      new connections spread over them again;
#   4. stop (SIGTERM) ends everything within 15 s; graceful-stop with
#      held connections within 35 s (GracefulShutdownTimeout 30);
#   5. no "could not duplicate listeners", AH00534 or crash in the error
#      log;
#   6. control: without the directive one LISTEN socket shared by both
#      children; "ListenCoresBucketsRatio 0" is a configuration error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $T0 = time;
my $N = 40;
my $stock = Ev2Server::is_stock();

my $ncpu = `getconf _NPROCESSORS_ONLN 2>/dev/null` // '';
chomp $ncpu;
plan skip_all => "cannot read the online CPU count (getconf _NPROCESSORS_ONLN: '$ncpu')"
    unless $ncpu =~ /^\d+$/ && $ncpu >= 1;
plan skip_all => 'no /proc/net/tcp to count listening sockets'
    unless -r '/proc/net/tcp';

# The ratio that gives 2 (or 3) buckets, and the count httpd derives.
my $ratio = $ncpu >= 4 ? int($ncpu / 2) : 1;
my $nb = int($ncpu / $ratio);
$nb = 1 if $nb < 1;
note "online CPUs $ncpu, ListenCoresBucketsRatio $ratio: expect $nb bucket(s)";

sub mpm_for {
    my ($children) = @_;
    return Ev2Server::one_child(4, StartServers => $children,
        ServerLimit => 2 * $children, MaxRequestWorkers => 4 * $children,
        MinSpareThreads => 1, MaxSpareThreads => 4 * $children,
        AsyncRequestWorkerFactor => 10);
}

my $CONF = <<'EOF';
KeepAliveTimeout 30
MaxKeepAliveRequests 0
EOF

# ---- what the kernel and /proc show --------------------------------------

# Inodes of the LISTEN sockets on 127.0.0.1:$port.
sub listen_inodes {
    my $port = shift;
    my $want = sprintf('0100007F:%04X', $port);
    open my $fh, '<', '/proc/net/tcp' or return ();
    my @ino;
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        next unless @f > 9 && $f[1] eq $want && $f[3] eq '0A';
        push @ino, $f[9];
    }
    close $fh;
    return sort { $a <=> $b } @ino;
}

# Inodes of the ESTABLISHED connections to 127.0.0.1:$port.
sub established_inodes {
    my $port = shift;
    my $want = sprintf('0100007F:%04X', $port);
    open my $fh, '<', '/proc/net/tcp' or return ();
    my %ino;
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        next unless @f > 9 && $f[1] eq $want && $f[3] eq '01';
        $ino{$f[9]} = 1;
    }
    close $fh;
    return \%ino;
}

# Socket inodes a process holds.
sub socket_inodes {
    my $pid = shift;
    my @ino;
    for my $fd (glob "/proc/$pid/fd/*") {
        my $l = readlink($fd) // next;
        push @ino, $1 if $l =~ /^socket:\[(\d+)\]$/;
    }
    return @ino;
}

# pid => [listening socket inodes of the port it holds]
sub listeners_by_pid {
    my ($s, @pids) = @_;
    my %lis = map { $_ => 1 } listen_inodes($s->port);
    my %by;
    for my $p (@pids) {
        $by{$p} = [sort { $a <=> $b } grep { $lis{$_} } socket_inodes($p)];
    }
    return \%by;
}

# The server's children by scoreboard slot, from mod_status: slot => {pid,
# conns, gen_ok}.  event2: the Event2SlotN lines of ?auto; stock: the
# per-process table of the HTML page (?auto has no per-process data).
sub children_status {
    my $s = shift;
    my %slot;
    if (!$stock) {
        my $r = $s->get('/server-status?auto', timeout => 10) or return undef;
        return undef unless $r->{status} == 200;
        while ($r->{body} =~ /^Event2Slot(\d+): pid (\d+) connections (\d+)/mg) {
            $slot{$1} = { pid => $2, conns => $3 };
        }
    }
    else {
        my $r = $s->get('/server-status', timeout => 10) or return undef;
        return undef unless $r->{status} == 200;
        while ($r->{body} =~ m{<tr><td>(\d+)</td><td>(\d+)</td><td>([^<]*)</td><td>(\d+)</td>}g) {
            $slot{$1} = { pid => $2, conns => $4, stopping => $3 };
        }
    }
    return \%slot;
}

# pid that served each request tagged "?t=$tag&c=I", from the access log.
sub served_by {
    my ($s, $tag, $count) = @_;
    my %pid;
    $s->wait_for(sub {
        open my $fh, '<', $s->access_log or return 0;
        while (my $l = <$fh>) {
            $pid{$1} = $2 if $l =~ m{"GET /index\.html\?t=\Q$tag\E&c=(\d+) HTTP/1\.1" 200 \S+ (\d+) };
        }
        close $fh;
        keys(%pid) >= $count;
    }, 5, 0.05);
    return \%pid;
}

# Open $n keep-alive connections, one request each; returns the ones that
# got a 200 and stay open.
sub hold {
    my ($s, $tag, $n) = @_;
    my @c;
    my $deadline = time + 30;
    for my $i (1 .. $n) {
        last if time > $deadline;
        my $c = Ev2HTTP->connect(port => $s->port, timeout => 5) or next;
        $c->send(Ev2HTTP::request_string('GET', "/index.html?t=$tag&c=$i"), 5) or next;
        my $r = $c->read_response(timeout => 10);
        push @c, $c if $r && $r->{status} == 200;
    }
    return @c;
}

# The children of the current generation hold one LISTEN socket each, and
# the children of different buckets different ones.  Returns 1 if so.
sub check_sockets {
    my ($s, $what, @kids) = @_;
    my @lis = listen_inodes($s->port);
    is(scalar @lis, $nb, "$what: $nb LISTEN socket(s) on the port")
        or diag "LISTEN inodes: @lis";
    my $by = listeners_by_pid($s, @kids);
    my @one = grep { @{ $by->{$_} } == 1 } @kids;
    is(scalar @one, scalar @kids, "$what: each child holds exactly one of them")
        or diag join '; ', map { "$_: @{ $by->{$_} }" } @kids;
    my %distinct = map { ($by->{$_}[0] // '') => 1 } @kids;
    is(scalar keys %distinct, $nb, "$what: the children hold $nb distinct one(s)")
        or diag join '; ', map { "$_: @{ $by->{$_} }" } @kids;
}

# Held connections spread: every child has some, and served some.
sub check_spread {
    my ($s, $what, $tag, $conns, @kids) = @_;
    is(scalar @$conns, $N, "$what: $N keep-alive connections answered and held");
    # The kernel's view: accepted connections each child holds.
    my $est = established_inodes($s->port);
    my %held = map { my $p = $_; ($p => scalar grep { $est->{$_} } socket_inodes($p)) } @kids;
    is(scalar(grep { $held{$_} > 0 } @kids), scalar @kids,
        "$what: every child (one per bucket) holds some of them (/proc)")
        or diag 'held: ' . join(', ', map { "$_=$held{$_}" } @kids);
    note "$what: connections held per child (/proc): "
        . join(', ', map { "$_=$held{$_}" } @kids);
    my $st = children_status($s);
    ok($st, "$what: mod_status per-process data") or return;
    my %by_pid = map { $_->{pid} => $_ } values %$st;
    my @with = grep { $by_pid{$_} && $by_pid{$_}{conns} > 0 } @kids;
  TODO: {
        # Stock refreshes a child's counts in the scoreboard only when its
        # timeout queues are due (event.c listener_thread), here not before
        # KeepAliveTimeout 30: the table shows 0 until then.
        local $TODO = $stock ? 'stock event updates per-process connections only at queue expiry' : undef;
        is(scalar @with, scalar @kids,
            "$what: every child (one per bucket) has connections > 0 in mod_status")
            or diag join '; ', map { "slot $_ pid $st->{$_}{pid} conns $st->{$_}{conns}" }
                sort keys %$st;
    }
    note "$what: connections per child (mod_status): "
        . join(', ', map { "$_=" . ($by_pid{$_} ? $by_pid{$_}{conns} : '?') } @kids);
    my $pids = served_by($s, $tag, $N);
    my %n;
    $n{$_}++ for values %$pids;
    my @served = grep { $n{$_} } @kids;
    is(scalar @served, scalar @kids, "$what: every child served some of them (access log)")
        or diag 'served: ' . join(', ', map { "$_=$n{$_}" } sort keys %n)
            . "; children @kids";
}

# The buckets of the children: slot % buckets for every listed pid.
sub buckets_of {
    my ($st, @kids) = @_;
    my %slot_of = map { $st->{$_}{pid} => $_ } keys %$st;
    my %b = map { defined $slot_of{$_} ? ($slot_of{$_} % $nb => 1) : () } @kids;
    return scalar keys %b;
}

sub log_problems {
    my $s = shift;
    my @bad = grep {
        /AH00534|could not duplicate listeners|cannot duplicate|AH0264[01]
         |Segmentation fault|exit signal|AH00052|AH00060|EV2061|BUG/x
    } split /\n/, $s->log_text;
    return @bad;
}

# Wait (bounded) for EOF on each connection; returns (clean EOFs, resets,
# still open).
sub wait_closed {
    my ($conns, $timeout) = @_;
    my %by_fh = map { fileno($_->socket) => $_ } @$conns;
    my $sel = IO::Select->new(map { $_->socket } @$conns);
    my ($clean, $reset) = (0, 0);
    my $deadline = time + $timeout;
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(0.1)) {
            my $c = $by_fh{fileno $fh};
            my $n = $c->_fill(time + 1);
            next if $n;
            $sel->remove($fh);
            if ($c->{error} || length $c->{buf}) { $reset++ } else { $clean++ }
        }
    }
    my @open = map { $by_fh{fileno $_} } $sel->handles;
    return ($clean, $reset, \@open);
}

# ---- 0. configuration: the directive is global and rejects 0 ------------

{
    my $s = Ev2Server->new(mpm => mpm_for(2), conf => "ListenCoresBucketsRatio 0\n");
    my ($rc, $out) = $s->config_test;
    isnt($rc, 0, 'ListenCoresBucketsRatio 0 is a configuration error');
    like($out, qr/ListenCoresBucketsRatio must be > 0/, '... saying it must be > 0');
    $s = Ev2Server->new(mpm => mpm_for(2),
        conf => "<VirtualHost 127.0.0.1:*>\nListenCoresBucketsRatio 1\n</VirtualHost>\n");
    ($rc, $out) = $s->config_test;
    isnt($rc, 0, 'ListenCoresBucketsRatio inside <VirtualHost> is refused (global only)');
}

# ---- 1. control: no directive, one bucket -------------------------------

{
    my $s = Ev2Server->new(mpm => mpm_for(2), conf => $CONF);
    $s->start;
    my @kids;
    $s->wait_for(sub { @kids = $s->child_pids; @kids == 2 }, 10, 0.05);
    is(scalar @kids, 2, 'control: two children');
    my @lis = listen_inodes($s->port);
    is(scalar @lis, 1, 'control (no directive): one LISTEN socket') or diag "inodes @lis";
    my $by = listeners_by_pid($s, @kids);
    my %d = map { ($by->{$_}[0] // '') => 1 } @kids;
    ok(keys(%d) == 1 && (keys %d)[0] ne '', 'control: both children hold that same socket')
        or diag join '; ', map { "$_: @{ $by->{$_} }" } @kids;
    ok($s->stop, 'control: stopped cleanly');
}

# ---- 2. buckets ----------------------------------------------------------

my $s = Ev2Server->new(mpm => mpm_for($nb),
    conf => "ListenCoresBucketsRatio $ratio\n$CONF");
$s->start;

my @kids;
$s->wait_for(sub { @kids = $s->child_pids; @kids == $nb }, 10, 0.05);
is(scalar @kids, $nb, "$nb child(ren) at start");

if ($nb < 2) {
    # One online CPU: the ratio gives one bucket, as httpd documents.
    my @lis = listen_inodes($s->port);
    is(scalar @lis, 1, "one online CPU: ListenCoresBucketsRatio $ratio gives one LISTEN socket");
    ok($s->stop, 'stopped cleanly');
  SKIP: {
        skip "only $ncpu online CPU: no ListenCoresBucketsRatio gives two buckets", 1;
        fail('two-bucket checks');
    }
    done_testing();
    exit 0;
}

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen0 = $st0->{ParentServerMPMGeneration};
{
    my $st = children_status($s);
    is(buckets_of($st, @kids), $nb, "the $nb children sit in slots of $nb different buckets")
        or diag join '; ', map { "slot $_ pid $st->{$_}{pid}" } sort keys %$st;
}
check_sockets($s, 'start', @kids);

my @held = hold($s, 'a', $N);
check_spread($s, 'start', 'a', \@held, @kids);
sleep 0.3;

# ---- 3. graceful restart with the connections held ----------------------

$s->graceful;
my $tg = time;
my ($clean, $reset, $open) = wait_closed(\@held, 10);
my $answered = 0;
for my $c (@$open) {
    $c->send(Ev2HTTP::request_string('GET', '/index.html?held=1'), 5) or next;
    my $r = $c->read_response(timeout => 10);
    $answered++ if $r && $r->{status} == 200;
}
is($clean + $answered, scalar @held,
    'graceful: every held connection was closed cleanly (EOF) or answered')
    or diag "clean EOF $clean, reset or partial $reset, answered $answered of "
        . scalar(@$open) . ' still open';
note sprintf('graceful: %d closed cleanly, %d answered after the restart (%.1f s)',
    $clean, $answered, time - $tg);
$_->close for @held;

my @left;
ok($s->wait_for(sub { @left = grep { Ev2Server::alive($_) } @kids; !@left }, 15, 0.05),
    'graceful: the old children exited within 15 s') or diag "still alive: @left";

my (@new, $st);
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    return 0 unless ($st->{ParentServerMPMGeneration} // -1) > $gen0;
    @new = $s->child_pids;
    return @new == $nb && !grep { my $n = $_; grep { $_ == $n } @kids } @new;
}, 15, 0.05), "graceful: a new generation of $nb children")
    or diag 'generation ' . ($st ? $st->{ParentServerMPMGeneration} // '?' : '?')
        . ", children now @new, old @kids";
{
    my $cs = children_status($s);
    is(buckets_of($cs, @new), $nb, "graceful: the new children sit in $nb different buckets")
        or diag join '; ', map { "slot $_ pid $cs->{$_}{pid}" } sort keys %$cs;
}
check_sockets($s, 'after graceful', @new);
my @held2 = hold($s, 'b', $N);
check_spread($s, 'after graceful', 'b', \@held2, @new);

my @bad = log_problems($s);
ok(!@bad, 'no duplicate-listener error, AH00534 or crash in the error log')
    or diag join "\n", @bad;

# ---- 4. stop with the connections held ----------------------------------

my $ts = time;
ok($s->stop(timeout => 15), 'stop: the server exited within 15 s');
ok(!grep({ Ev2Server::alive($_) } @new, $s->pid), 'stop: every child is gone');
note sprintf('stop took %.1f s', time - $ts);
$_->close for @held2;

# ---- 5. graceful-stop with the connections held -------------------------

my $g = Ev2Server->new(mpm => mpm_for($nb),
    conf => "ListenCoresBucketsRatio $ratio\n$CONF");
$g->start;
my @gk;
$g->wait_for(sub { @gk = $g->child_pids; @gk == $nb }, 10, 0.05);
check_sockets($g, 'graceful-stop server', @gk);
my @held3 = hold($g, 'c', $N);
check_spread($g, 'graceful-stop server', 'c', \@held3, @gk);
$g->graceful_stop;
my $tgs = time;
ok($g->wait_gone(35), 'graceful-stop: the server exited within 35 s');
ok(!grep({ Ev2Server::alive($_) } @gk, $g->pid), 'graceful-stop: every child is gone');
note sprintf('graceful-stop took %.1f s', time - $tgs);
my ($c3, $r3, $o3) = wait_closed(\@held3, 2);
is($c3 + $r3, scalar @held3, 'graceful-stop: every held connection is closed')
    or diag "clean $c3, reset $r3, open " . scalar(@$o3);
$_->close for @held3;
@bad = log_problems($g);
ok(!@bad, 'graceful-stop: no error or crash in the error log') or diag join "\n", @bad;
$g->stop;

note sprintf('buckets.t took %.1f s', time - $T0);
done_testing();

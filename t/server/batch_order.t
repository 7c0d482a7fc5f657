# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# batch_order.t: a keep-alive connection whose next request has arrived is
# not closed early, even when the listener learns of that request in the same
# epoll batch as a new client that finds every worker busy.
#
# The README: "A readable keep-alive connection is never closed for lack of a
# worker: it waits its turn."  When admission is closed and no worker is idle,
# a waiting client makes the listener close the keep-alive connections idle
# for 100 ms or more.  Those closes must not touch a connection whose
# readiness is still unread in the batch being dispatched: that connection is
# no longer idle, its client sent a request.
#
# To put both in one batch, the child is frozen (SIGSTOP) while a new client
# connects and sends its request (the listening socket becomes readable
# first) and then each idle keep-alive connection sends its next request; on
# SIGCONT the listener reads them all from one epoll_wait.  Both workers are
# busy with slow downloads meanwhile, which are then aborted so that the
# workers serve the queued requests.
#
# The downloads are second requests on connections opened with the others:
# an accept that takes the last idle worker finds admission closed in the
# same accept loop, and today that alone closes idle keep-alive connections
# early (with no client waiting), before the batch this test is about.  Two
# workers, so that every accept of the setup leaves one idle.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $K = 5;
my $stock = Ev2Server::is_stock();
my $NDL = 2;    # workers, each kept busy by one slow download

# One child, two workers.  Factor 10: with a worker idle, 2 + 10 connections
# are admitted (the downloads' and the K idle ones); with both busy the
# limit is 2, so the new client finds admission closed.
my $MPM = Ev2Server::one_child(2, AsyncRequestWorkerFactor => 10);

my $CONF = <<'EOF2';
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Timeout 30
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 64
</Location>
EOF2
# The early closes are logged at debug level (for the diagnostics).
$CONF .= "LogLevel info mpm_event2:debug\n" unless $stock;

my $s = Ev2Server->new(
    mpm     => $MPM,
    conf    => $CONF,
    modules => [qw(ratelimit env)],
    # 32 s at 64 KiB/s: a worker stays busy until its download is aborted.
    files   => { 'slow/big.bin' => 'z' x (2 * 1024 * 1024) },
);

# The frozen child must be thawed whatever happens, before Ev2Server's own
# END block stops the server (END blocks run last-defined first).
my $frozen;
sub thaw {
    return unless $frozen;
    kill 'CONT', $frozen;
    $frozen = undef;
}
END { thaw() }

$s->start;

my @child = $s->child_pids;
is(scalar @child, 1, 'one child process') or diag "children: @child";
my $child = $child[0];

# Open a keep-alive connection and make one request on it; undef on failure.
sub open_keepalive {
    my $name = shift;
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 10);
    unless ($c) { diag "$name: $@"; return undef }
    $c->send(Ev2HTTP::request_string('GET', "/index.html?$name&n=1"));
    my $r = $c->read_response(timeout => 10);
    return $c if $r && $r->{status} == 200
                 && ($r->{headers}{connection} // '') !~ /close/i;
    diag "$name: " . ($r ? "status $r->{status}" : 'no response: ' . ($c->{error} // '?'));
    $c->close;
    return undef;
}

# The downloads' connections first, then the K that will be idle.  One by
# one: each request is done (its worker back waiting) before the next
# connection, so every accept finds both workers idle.
my (@dl, @ka);
for my $i (1 .. $NDL) {
    my $c = open_keepalive("dl=$i") or next;
    push @dl, $c;
    sleep 0.02;
}
for my $i (1 .. $K) {
    my $c = open_keepalive("ka=$i") or next;
    push @ka, $c;
    sleep 0.02;
}
is(scalar @dl + @ka, $NDL + $K, ($NDL + $K) . ' keep-alive connections open after one request each');

# Each download occupies a worker; its data is read as it comes.
sub pump {
    for my $d (@dl) {
        next unless $d->socket;
        my $sel = IO::Select->new($d->socket);
        $d->_fill(time + 1) while !$d->{eof} && $sel->can_read(0);
        # Only the status line is looked at.
        substr($d->{buf}, 64) = '' if length $d->{buf} > 64;
    }
}
my $busy = 0;
for my $i (0 .. $#dl) {
    my $d = $dl[$i];
    $d->send(Ev2HTTP::request_string('GET', '/slow/big.bin?dl=' . ($i + 1))) or next;
    my $started = $s->wait_for(sub { pump(); $d->{buf} =~ m{^HTTP/1\.1 200 } }, 15, 0.05);
    $busy++ if $started;
    diag 'download ' . ($i + 1) . ' did not start: ' . substr($d->{buf}, 0, 40)
        . ' ' . ($d->{error} // '') unless $started;
}
is($busy, $NDL, "$NDL slow downloads started (every worker is busy)");

SKIP: {
    skip 'no child, connections or busy workers to test with', 4
        unless $child && @ka == $K && $busy == $NDL;

    # Idle for well over the 100 ms that qualify them for an early close.
    my $t = time + 0.5;
    while (time < $t) { pump(); sleep 0.05 }
    my $open = grep { $_->is_open(0) } @ka;
    is($open, $K, "the $K idle keep-alive connections are still open with every "
        . 'worker busy and no client waiting')
        or diag join "\n", early_close_lines();

    # Freeze the child: whatever happens now reaches its listener later, in
    # one epoll batch, in the order it happened.
    kill 'STOP', $child;
    $frozen = $child;
    ok($s->wait_for(sub { all_threads_stopped($child) }, 10, 0.02),
        "child $child stopped (every thread)");

    # 1. A new client: the listening socket becomes readable (with the
    #    default AcceptFilter, once its request has arrived).
    my $new = Ev2HTTP->connect(port => $s->port, timeout => 10);
    diag "new client: $@" unless $new;
    $new->send(Ev2HTTP::request_string('GET', '/index.html?new=1')) if $new;
    sleep 0.1;
    # 2. Then each idle keep-alive connection sends its next request.
    for my $i (0 .. $#ka) {
        $ka[$i]->send(Ev2HTTP::request_string('GET', '/index.html?ka=' . ($i + 1) . '&n=2'))
            or diag 'keep-alive connection ' . ($i + 1) . ": send failed: $!";
    }
    sleep 0.2;
    thaw();
    my $t_cont = time;

    # Let the listener dispatch the batch with both workers still busy, then
    # free them by aborting the downloads.
    $t = time + 1;
    while (time < $t) { pump(); sleep 0.05 }
    my $dl_ended = grep { $_->{eof} } @dl;
    $_->close for @dl;

    # Every keep-alive request is answered: the workers serve them in turn.
    my @got;
    my $answered = 0;
    for my $i (0 .. $#ka) {
        my $r = $ka[$i]->read_response(timeout => 15);
        my $what = $r ? "status $r->{status}"
                      : 'no response (' . ($ka[$i]{error} // '?') . ')';
        $answered++ if $r && $r->{status} == 200;
        push @got, sprintf('ka=%d: %s after %.2f s', $i + 1, $what, time - $t_cont);
    }
    {
        # Stock's listener shuts down a readable keep-alive connection
        # when no worker is idle at once.
        local $TODO = 'stock event closes readable keep-alive connections '
            . 'when no worker is idle' if $stock;
        is($answered, $K, "all $K keep-alive requests that came in the batch "
            . 'of the waiting client are answered (none closed early)')
            or diag join "\n", @got,
                "$dl_ended of $NDL downloads had ended before they were aborted",
                early_close_lines();
    }
    note $_ for @got;

    my $r = $new ? $new->read_response(timeout => 15) : undef;
    ok($r && $r->{status} == 200, 'the new client is answered')
        or diag 'new client: ' . ($new ? $new->{error} // '?' : 'not connected')
            . "\n" . $s->log_tail(15);
    $new->close if $new;
}

thaw();
$_->close for @ka, @dl;
ok($s->stop, 'server stopped cleanly');
done_testing();

# Whether every thread of $pid is in the stopped state.
sub all_threads_stopped {
    my $pid = shift;
    opendir my $dh, "/proc/$pid/task" or return 0;
    my @tids = grep { /^\d+$/ } readdir $dh;
    closedir $dh;
    return 0 unless @tids;
    for my $tid (@tids) {
        my ($state) = Ev2Server::proc_stat("$pid/task/$tid");
        return 0 unless defined $state && $state =~ /^[Tt]$/;
    }
    return 1;
}

# The MPM's debug lines about early keep-alive closes, for the diagnostics.
sub early_close_lines {
    return map { "error_log: $_" }
        grep { /idle keep-alive connections early/ } split /\n/, $s->log_text;
}

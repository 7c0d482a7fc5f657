# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# log_codes.t: administrators' monitoring greps the AHxxxxx codes of the
# error log.  The same sequence runs against the stock event MPM and
# against the MPM under test, each on its own server, side by side:
#   lifecycle   start, graceful, restart, graceful-stop, start, stop
#   maxworkers  one child of 4 threads: 2 busy (within MinSpareThreads of
#               MaxRequestWorkers), then 4 busy (MaxRequestWorkers reached)
#   scoreboard  ServerLimit 2, every child busy, a graceful restart: the
#               old children drain in both slots ("scoreboard is full")
# The error log is read at LogLevel notice (info for the MPM module).
# For every step, each AH code the stock MPM logged must also be logged by
# the MPM under test.  About 25 s.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $STOCK_SO  = '/usr/lib/apache2/modules/mod_mpm_event.so';
my $STOCK_SYM = 'mpm_event_module';
plan skip_all => "no stock event MPM at $STOCK_SO" unless -r $STOCK_SO;

my @MPMS = (
    { label => 'stock', so => $STOCK_SO, sym => $STOCK_SYM },
    { label => 'ours',  so => Ev2Server::mpm_so(), sym => Ev2Server::mpm_sym() },
);

# A slow response keeps its worker in the handler (mod_ratelimit).
my $SLOW_SIZE = 2 * 1024 * 1024;    # 32 s at 64 KiB/s
my $SLOW_CONF = <<'EOF2';
Timeout 60
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 64
</Location>
EOF2

sub new_server {
    my ($m, $mpm_conf, $extra_conf) = @_;
    (my $modname = $m->{sym}) =~ s/_module$//;
    return Ev2Server->new(
        mpm_so  => $m->{so},
        mpm_sym => $m->{sym},
        mpm     => $mpm_conf,
        conf    => "LogLevel notice $modname:info\n" . ($extra_conf // ''),
        modules => [qw(ratelimit env)],
        files   => { 'slow/big.bin' => 'z' x $SLOW_SIZE },
    );
}

# Error log text after byte offset $off.
sub log_since {
    my ($s, $off) = @_;
    return substr($s->log_text, $off);
}

sub log_size { length $_[0]->log_text }

# The message codes of the lines in $text, in order: AHxxxxx and EV2xxx.
sub codes_of {
    my $text = shift;
    return $text =~ /\] ((?:AH\d{5}|EV2\d{3})): /g;
}

my %seen;    # $step => $label => [codes in order]

# Run one step on every server: $act->($s) triggers it, $done->($s, $new)
# (with $new the log text logged since) says when it settled, bounded by
# $timeout; then $linger seconds more for messages that follow (the parent
# maintains once a second).
sub step {
    my ($step, $servers, $act, $done, $timeout, $linger) = @_;
    my %off = map { $_ => log_size($servers->{$_}) } keys %$servers;
    for my $l (sort keys %$servers) {
        eval { $act->($servers->{$l}); 1 } or diag "$step, $l: $@";
    }
    my %ok;
    my $deadline = time + $timeout;
    while (time < $deadline && keys(%ok) < keys(%$servers)) {
        for my $l (keys %$servers) {
            next if $ok{$l};
            $ok{$l} = 1 if $done->($servers->{$l}, log_since($servers->{$l}, $off{$l}));
        }
        sleep 0.1;
    }
    for my $l (sort keys %$servers) {
        diag "$step, $l: did not settle within $timeout s" unless $ok{$l};
    }
    sleep $linger if $linger;
    for my $l (keys %$servers) {
        $seen{$step}{$l} = [codes_of(log_since($servers->{$l}, $off{$l}))];
    }
}

sub resumed { $_[1] =~ /resuming normal operations/ }

sub gone { !Ev2Server::alive($_[0]->pid) && !$_[0]->group_pids }

# Open a slow download and wait (bounded) until its status line arrived: a
# worker is then busy in the handler.  Returns the connection or undef.
sub occupy_worker {
    my ($s, $tag, $wait) = @_;
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5) or return undef;
    $c->send(Ev2HTTP::request_string('GET', "/slow/big.bin?$tag"));
    my $deadline = time + ($wait // 10);
    while (time < $deadline && $c->{buf} !~ m{^HTTP/1\.1 200 }) {
        my $n = $c->_fill(time + 0.5);
        last if defined $n && $n == 0;    # closed
    }
    return $c->{buf} =~ m{^HTTP/1\.1 200 } ? $c : undef;
}

# ---- lifecycle -------------------------------------------------------------

my $LIFE_MPM = <<'EOF2';
StartServers 2
ServerLimit 4
ThreadLimit 4
ThreadsPerChild 4
MaxRequestWorkers 16
MinSpareThreads 2
MaxSpareThreads 12
EOF2

{
    my %srv = map { $_->{label} => new_server($_, $LIFE_MPM) } @MPMS;
    step('start', \%srv, sub { $_[0]->start }, \&resumed, 20, 1.2);
    step('graceful', \%srv, sub { $_[0]->graceful }, \&resumed, 15, 1.2);
    step('restart', \%srv, sub { $_[0]->restart }, \&resumed, 15, 1.2);
    step('graceful-stop', \%srv, sub { $_[0]->graceful_stop }, sub { gone($_[0]) }, 20, 0);
    $_->stop for values %srv;
    step('start again', \%srv, sub { $_[0]->start }, \&resumed, 20, 0);
    step('stop', \%srv, sub { kill 'TERM', $_[0]->pid }, sub { gone($_[0]) }, 20, 0);
    $_->stop for values %srv;
}

# ---- MaxRequestWorkers -----------------------------------------------------

my $MAXW_MPM = <<'EOF2';
StartServers 1
ServerLimit 1
ThreadLimit 4
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 3
MaxSpareThreads 8
EOF2

{
    my %srv = map { $_->{label} => new_server($_, $MAXW_MPM, $SLOW_CONF) } @MPMS;
    $_->start for values %srv;
    sleep 1.2;
    my %busy;
    my $maint = sub { $_[1] =~ /MaxRequestWorkers/ };
    step('2 of 4 workers busy', \%srv, sub {
        my $s = shift;
        for my $i (1 .. 2) {
            my $c = occupy_worker($s, "near=$i") or die "slow request $i not started";
            push @{ $busy{$s->port} }, $c;
        }
    }, $maint, 5, 0.5);
    step('4 of 4 workers busy', \%srv, sub {
        my $s = shift;
        for my $i (3 .. 4) {
            my $c = occupy_worker($s, "max=$i") or die "slow request $i not started";
            push @{ $busy{$s->port} }, $c;
        }
    }, sub { $_[1] =~ /reached MaxRequestWorkers/ }, 5, 0.5);
    $_->close for map { @$_ } values %busy;
    $_->stop for values %srv;
}

# ---- scoreboard full ---------------------------------------------------------

my $SB_MPM = <<'EOF2';
StartServers 2
ServerLimit 2
ThreadLimit 2
ThreadsPerChild 2
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
EOF2

{
    my %srv = map { $_->{label} => new_server($_, $SB_MPM, $SLOW_CONF) } @MPMS;
    $_->start for values %srv;
    my %busy;
    # Three busy workers over two children of two threads: both children
    # are busy, so both keep their slots while they drain.
    for my $s (values %srv) {
        $s->wait_for(sub { $s->child_pids >= 2 }, 10);
        # Which child takes a connection is the kernel's pick: one that
        # lands on the child whose two workers are busy waits there
        # unserved (3 s), and the next try may reach the other child.
        my $got = 0;
        for my $i (1 .. 6) {
            last if $got >= 3;
            my $c = occupy_worker($s, "sb=$i", 3);
            if ($c) { push @{ $busy{$s->port} }, $c; $got++ }
        }
        diag "port " . $s->port . ": only $got of 3 workers busy" if $got < 3;
    }
    # Let a maintenance pass see the busy workers first, so that what it
    # logs about them (AH00484, for either MPM) falls before the step, not
    # inside it at random.
    sleep 1.5;
    step('graceful with every slot draining', \%srv, sub { $_[0]->graceful },
        sub { $_[1] =~ /ServerLimit/ }, 6, 0.5);
    $_->close for map { @$_ } values %busy;
    $_->stop for values %srv;
}

# ---- compare -----------------------------------------------------------------

for my $step ('start', 'graceful', 'restart', 'graceful-stop', 'start again', 'stop',
              '2 of 4 workers busy', '4 of 4 workers busy',
              'graceful with every slot draining') {
    my @stock = @{ $seen{$step}{stock} // [] };
    my @ours  = @{ $seen{$step}{ours} // [] };
    my %have = map { $_ => 1 } @ours;
    my %u;
    my @missing = grep { /^AH/ && !$have{$_} && !$u{$_}++ } @stock;
    ok(@stock && !@missing, "$step: every code stock logs is logged by ours"
        . (@stock ? '' : ' (stock logged nothing: the step did not happen)'))
        or diag "missing: @missing\n  stock: @stock\n  ours:  @ours";
    note "$step: stock @stock; ours @ours";
}

done_testing();

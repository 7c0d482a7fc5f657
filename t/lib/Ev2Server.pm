# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2Server: start and stop a private /usr/sbin/apache2 for one test scenario
# that needs its own global MPM settings (ThreadsPerChild,
# AsyncRequestWorkerFactor, MaxConnectionsPerChild, ...).
#
#   my $s = Ev2Server->new(mpm => "StartServers 1\nThreadsPerChild 4\n",
#                          conf => "KeepAliveTimeout 2\n",
#                          modules => ['ratelimit', 'env'],
#                          files => { 'big.bin' => $bytes },
#                          env => { LD_PRELOAD => $so });   # for apache2 only
#   # ready => sub { my $self = shift; ... }: how start() sees the server
#   # answer (default: a plain GET /index.html gets any status), for servers
#   # that expect something else first (e.g. a PROXY protocol header)
#   $s->start;                 # dies if it does not come up (bounded)
#   my $st = $s->status_auto;  # /server-status?auto as a hash
#   $s->graceful; $s->restart; $s->graceful_stop; $s->stop;
#
# The MPM under test is taken from the environment so the same tests can run
# against the stock event MPM:
#   EV2_MPM_SO    path of the MPM .so   (default: <repo>/.libs/mod_mpm_event2.so)
#   EV2_MPM_SYM   its module symbol     (default: mpm_event2_module)
#   EV2_MPM_NAME  its ap_mpm_query name (default: event2, or derived from SYM)
#   EV2_APACHE2   the httpd binary      (default: /usr/sbin/apache2)
# A test that compares two MPMs passes mpm_so => PATH, mpm_sym => SYMBOL to
# new() instead; these override the environment for that server only.
#
# Every wait is bounded.  stop() escalates to SIGKILL for anything left of the
# server's process group; live servers are stopped in DESTROY and in END.
package Ev2Server;

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Carp qw(croak);

use Ev2HTTP ();

my $LIBDIR  = dirname(abs_path(__FILE__));
my $REPO    = abs_path("$LIBDIR/../..") // "$LIBDIR/../..";
my $MODDIR  = '/usr/lib/apache2/modules';

our %LIVE;    # pid => server object (weak enough: we only need to stop them)

# A test killed by a signal (timeout, Ctrl-C) still runs END and stops its
# servers.
my %SIGNUM = (HUP => 1, INT => 2, TERM => 15);
for my $sig (sort keys %SIGNUM) {
    $SIG{$sig} ||= sub {
        print STDERR "# caught SIG$sig, stopping servers\n";
        exit 128 + $SIGNUM{$sig};
    };
}

sub apache2  { $ENV{EV2_APACHE2} || '/usr/sbin/apache2' }
sub mpm_so   { $ENV{EV2_MPM_SO}  || "$REPO/.libs/mod_mpm_event2.so" }
sub mpm_sym  { $ENV{EV2_MPM_SYM} || 'mpm_event2_module' }

sub mpm_name {
    return $ENV{EV2_MPM_NAME} if $ENV{EV2_MPM_NAME};
    my $sym = mpm_sym();
    return 'event2' if $sym eq 'mpm_event2_module';
    return $1 if $sym =~ /^mpm_(\w+)_module$/;
    return 'event2';
}

# True when the tests run against something other than mod_mpm_event2 (the
# stock event MPM).  event2-only assertions are marked TODO then.
sub is_stock { mpm_sym() ne 'mpm_event2_module' }

# The MPM settings of a server with one child of $n worker threads, and
# nothing for idle maintenance to start or stop: StartServers 1,
# ServerLimit 1, ThreadLimit = ThreadsPerChild = MaxRequestWorkers = $n,
# MinSpareThreads 1, MaxSpareThreads $n.  Further directives follow as
# name => value pairs, in the order given; a name of the preset replaces
# its value (e.g. ServerLimit => 2 for a graceful restart's new child).
#   mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 10)
sub one_child {
    my ($n, @extra) = @_;
    my @order = qw(StartServers ServerLimit ThreadLimit ThreadsPerChild
                   MaxRequestWorkers MinSpareThreads MaxSpareThreads);
    my %v = (StartServers => 1, ServerLimit => 1, ThreadLimit => $n,
             ThreadsPerChild => $n, MaxRequestWorkers => $n,
             MinSpareThreads => 1, MaxSpareThreads => $n);
    while (my ($k, $val) = splice(@extra, 0, 2)) {
        push @order, $k unless exists $v{$k};
        $v{$k} = $val;
    }
    return join '', map { "$_ $v{$_}\n" } @order;
}

# Pick a free port on 127.0.0.1 (the kernel chooses; small race accepted,
# start() retries on "Address already in use").
sub free_port {
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
        Listen => 1, ReuseAddr => 1,
    ) or die "cannot bind a probe socket: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub new {
    my ($class, %a) = @_;
    my $self = bless {
        mpm     => $a{mpm} // '',
        conf    => $a{conf} // '',
        modules => $a{modules} // [],
        files   => $a{files} // {},
        nofile  => $a{nofile} // 4096,
        env     => $a{env} // {},
        start_timeout => $a{start_timeout} // 30,
        ready   => $a{ready},
        keep    => $ENV{EV2_KEEP_TMP} ? 1 : 0,
        mpm_so  => $a{mpm_so},
        mpm_sym => $a{mpm_sym},
    }, $class;
    $self->{dir} = tempdir('ev2srv-XXXXXX', TMPDIR => 1, CLEANUP => !$self->{keep});
    chmod 0755, $self->{dir};
    make_path(map { "$self->{dir}/$_" } qw(htdocs logs run));
    chmod 0755, map { "$self->{dir}/$_" } qw(htdocs logs run);
    $self->{port} = $a{port} // free_port();
    $self->_write_docroot;
    $self->write_config;
    return $self;
}

sub dir        { $_[0]{dir} }
sub port       { $_[0]{port} }
sub conf_file  { "$_[0]{dir}/httpd.conf" }
sub pid_file   { "$_[0]{dir}/run/httpd.pid" }
sub error_log  { "$_[0]{dir}/logs/error_log" }
sub access_log { "$_[0]{dir}/logs/access_log" }
sub docroot    { "$_[0]{dir}/htdocs" }
sub url        { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }

sub _write_file {
    my ($path, $content) = @_;
    make_path(dirname($path));
    open my $fh, '>', $path or die "write $path: $!";
    binmode $fh;
    print $fh $content;
    close $fh or die "close $path: $!";
    chmod 0644, $path;
}

sub _write_docroot {
    my $self = shift;
    my %files = (
        'index.html' => "<html><body><h1>mod_mpm_event2 test</h1></body></html>\n",
        %{ $self->{files} },
    );
    for my $f (sort keys %files) {
        _write_file($self->docroot . "/$f", $files{$f});
    }
}

# (Re)write httpd.conf; call again after changing $self->{mpm}/{conf} and
# before graceful()/restart() to test a config change.
sub write_config {
    my $self = shift;
    my $d = $self->{dir};
    my %seen;
    my @mods = grep { !$seen{$_}++ }
        (qw(authz_core mime dir status), @{ $self->{modules} });
    my $load = join '', map {
        "LoadModule ${_}_module $MODDIR/mod_$_.so\n"
    } @mods;
    my $so  = $self->{mpm_so} // mpm_so();
    my $sym = $self->{mpm_sym} // mpm_sym();
    my $user = $> == 0 ? "User www-data\nGroup www-data\n" : '';
    my $port = $self->{port};
    my $conf = <<"EOF";
# generated by t/lib/Ev2Server.pm
ServerRoot "$d"
ServerName 127.0.0.1
DefaultRuntimeDir "$d/run"
PidFile "$d/run/httpd.pid"
ErrorLog "$d/logs/error_log"
LogLevel info
$user
LoadModule $sym "$so"
$load
Listen 127.0.0.1:$port
TypesConfig /etc/mime.types
DocumentRoot "$d/htdocs"
<Directory />
    Require all denied
    AllowOverride None
</Directory>
<Directory "$d/htdocs">
    Require all granted
</Directory>
DirectoryIndex index.html
LogFormat "%h %l %u %t \\"%r\\" %>s %b %{pid}P %{tid}P" ev2
CustomLog "$d/logs/access_log" ev2
ExtendedStatus On
<Location /server-status>
    SetHandler server-status
</Location>
KeepAlive On
GracefulShutdownTimeout 30

# MPM settings of this scenario
$self->{mpm}

# extra configuration of this scenario
$self->{conf}
EOF
    _write_file($self->conf_file, $conf);
}

# Run "apache2 -f conf <args>" in the foreground, bounded; returns
# (exit status, combined output).
sub apache2_cmd {
    my ($self, @args) = @_;
    my $timeout = 30;
    my %e = %{ $self->{env} };
    my @env = %e ? ('env', map { "$_=$e{$_}" } sort keys %e) : ();
    my @cmd = ('timeout', '-k', '5', $timeout, @env, apache2(), '-f', $self->conf_file, @args);
    return run_cmd(\@cmd, nofile => $self->{nofile});
}

# Run a command (array ref) with stdin from /dev/null, stdout+stderr captured.
sub run_cmd {
    my ($cmd, %o) = @_;
    my $out = '';
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        if ($o{nofile}) {
            # Raise the descriptor limit for the server (soft up to hard).
            exec 'sh', '-c', 'ulimit -n "$0" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
                $o{nofile}, @$cmd
                or POSIX::_exit(127);    # never run the parent's END blocks here
        }
        exec(@$cmd) or do { print STDERR "exec $cmd->[0]: $!\n"; POSIX::_exit(127) };
    }
    local $/;
    $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

# Syntax check: (exit code, output).
sub config_test { $_[0]->apache2_cmd('-t') }

sub _read_pid {
    my $self = shift;
    open my $fh, '<', $self->pid_file or return undef;
    my $pid = <$fh>;
    close $fh;
    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}

sub pid { $_[0]{pid} }

# Start the server and wait (bounded) until the pid file exists, the pid is
# alive and the port answers an HTTP request.  Dies on failure (after making
# sure nothing is left running).
sub start {
    my $self = shift;
    for my $attempt (1 .. 3) {
        unlink $self->pid_file;
        my ($rc, $out) = $self->apache2_cmd('-k', 'start');
        $self->{start_output} = $out;
        if ($rc != 0) {
            if ($out =~ /Address already in use/ && $attempt < 3) {
                $self->{port} = free_port();
                $self->write_config;
                next;
            }
            my $log = $self->log_tail;
            $self->_kill_leftovers;
            die "apache2 -k start failed (exit $rc): $out\n" . $log;
        }
        my $deadline = time + $self->{start_timeout};
        my $pid;
        while (time < $deadline) {
            $pid = $self->_read_pid;
            last if $pid && alive($pid);
            sleep 0.05;
        }
        unless ($pid && alive($pid)) {
            my $log = $self->log_tail;
            $self->_kill_leftovers;
            if ($log =~ /Address already in use/ && $attempt < 3) {
                $self->{port} = free_port();
                $self->write_config;
                next;
            }
            die "server did not write a live pid within $self->{start_timeout}s\n$log";
        }
        $self->{pid} = $pid;
        $self->{pgid} = pgid_of($pid);
        $LIVE{$pid} = $self;
        unless ($self->wait_for(sub { $self->_answers }, $self->{start_timeout})) {
            my $log = $self->log_tail;
            $self->stop;
            die "server (pid $pid) did not answer on port $self->{port}\n$log";
        }
        return $self;
    }
    die "could not start the server";
}

sub _answers {
    my $self = shift;
    return $self->{ready}->($self) if $self->{ready};
    my $r = Ev2HTTP::get($self->{port}, '/index.html', timeout => 2);
    return $r && $r->{status} =~ /^\d+$/;
}

# Poll $cond every $interval seconds until it returns true or $timeout
# seconds have passed.  Returns the last value of $cond.
sub wait_for {
    my ($self, $cond, $timeout, $interval) = @_;
    $interval //= 0.1;
    my $deadline = time + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time >= $deadline;
        sleep $interval;
    }
}

# ---- process table -------------------------------------------------------

# (state, ppid, pgrp) of a pid from /proc, or () if it does not exist.
sub proc_stat {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/stat" or return ();
    my $s = <$fh>;
    close $fh;
    return () unless defined $s;
    # pid (comm) state ppid pgrp ...; comm may contain spaces/parens
    $s =~ /^\d+ \(.*\) (\S) (\d+) (\d+)/s or return ();
    return ($1, $2, $3);
}

# A process is alive if it exists and is not a zombie (a stopped daemon may
# linger as a zombie when PID 1 does not reap).
sub alive {
    my $pid = shift;
    return 0 unless $pid;
    my ($state) = proc_stat($pid);
    return defined $state && $state ne 'Z' && $state ne 'X' ? 1 : 0;
}

sub pgid_of { my @s = proc_stat($_[0]); return $s[2] }

sub _all_pids {
    opendir my $dh, '/proc' or return ();
    my @p = grep { /^\d+$/ } readdir $dh;
    closedir $dh;
    return @p;
}

# Live processes whose command line contains $arg as one argument.
sub pids_with_arg {
    my $arg = shift;
    my @p;
    for my $p (_all_pids()) {
        next if $p == $$;
        open my $fh, '<', "/proc/$p/cmdline" or next;
        local $/;
        my $cl = <$fh> // '';
        close $fh;
        push @p, $p if grep { $_ eq $arg } split /\0/, $cl and alive($p);
    }
    return @p;
}

# Live (non-zombie) children of the server's parent process, sorted.
sub child_pids {
    my $self = shift;
    my $ppid = shift // $self->{pid} or return ();
    my @kids;
    for my $p (_all_pids()) {
        my ($state, $pp) = proc_stat($p);
        next unless defined $state;
        next if $state eq 'Z' || $state eq 'X';
        push @kids, $p if $pp == $ppid;
    }
    my @sorted = sort { $a <=> $b } @kids;
    return @sorted;
}

# Every live process of the server's process group (parent + children).
sub group_pids {
    my $self = shift;
    my $pg = $self->{pgid} or return ();
    my @p;
    for my $p (_all_pids()) {
        my ($state, undef, $g) = proc_stat($p);
        next unless defined $state;
        next if $state eq 'Z' || $state eq 'X';
        push @p, $p if $g == $pg;
    }
    my @sorted = sort { $a <=> $b } @p;
    return @sorted;
}

# ---- HTTP helpers -------------------------------------------------------

sub get {
    my ($self, $path, %a) = @_;
    return Ev2HTTP::get($self->{port}, $path, %a);
}

# /server-status?auto parsed into a hash (undef if it cannot be fetched).
sub status_auto {
    my $self = shift;
    my $r = $self->get('/server-status?auto', timeout => 10);
    return undef unless $r && $r->{status} == 200;
    my %h;
    for my $line (split /\r?\n/, $r->{body}) {
        next unless $line =~ /^([^:]+):\s*(.*?)\s*$/;
        $h{$1} = $2;
    }
    return \%h;
}

# ---- signals ------------------------------------------------------------

sub _signal_cmd {
    my ($self, $what) = @_;
    my ($rc, $out) = $self->apache2_cmd('-k', $what);
    die "apache2 -k $what failed (exit $rc): $out" if $rc != 0;
    return 1;
}

# Graceful restart (apache2 -k graceful = SIGUSR1).
sub graceful { $_[0]->_signal_cmd('graceful') }

# Hard restart (apache2 -k restart = SIGHUP).
sub restart { $_[0]->_signal_cmd('restart') }

# Graceful stop (apache2 -k graceful-stop = SIGWINCH); does not wait.
sub graceful_stop {
    my $self = shift;
    $self->_signal_cmd('graceful-stop');
}

sub signal {
    my ($self, $sig) = @_;
    return kill($sig, $self->{pid});
}

# Wait until the parent and all of its process group are gone.  Returns 1
# if gone within $timeout.
sub wait_gone {
    my ($self, $timeout) = @_;
    return 1 unless $self->{pid};
    return $self->wait_for(sub {
        !alive($self->{pid}) && !$self->group_pids
    }, $timeout, 0.1) ? 1 : 0;
}

# Stop: SIGTERM the parent, wait (bounded), then SIGKILL leftovers.
# Returns 1 if the server went away on its own, 0 if it had to be killed.
sub stop {
    my ($self, %a) = @_;
    my $pid = $self->{pid} or return 1;
    my $timeout = $a{timeout} // 15;
    kill 'TERM', $pid if alive($pid);
    my $clean = $self->wait_gone($timeout);
    $self->_kill_leftovers unless $clean;
    delete $LIVE{$pid};
    $self->{stopped} = 1;
    return $clean;
}

sub _kill_leftovers {
    my $self = shift;
    my @victims;
    push @victims, $self->{pid} if $self->{pid} && alive($self->{pid});
    if (my $p = $self->_read_pid) {
        push @victims, $p if alive($p) && !grep { $_ == $p } @victims;
    }
    for my $v (@victims) {
        push @victims, $self->child_pids($v);
    }
    push @victims, $self->group_pids;
    # Last resort when no pid is known (pid file never written): processes
    # whose command line names this server's own config file.
    push @victims, pids_with_arg($self->conf_file);
    my %u = map { $_ => 1 } grep { $_ && $_ != $$ } @victims;
    kill 'KILL', keys %u if %u;
    # The daemon made its own session, so its process group is its own;
    # never signal our own group.
    my $pg = $self->{pgid};
    kill 'KILL', -$pg if $pg && $pg > 1 && $pg != getpgrp();
    $self->wait_for(sub { !grep { alive($_) } keys %u }, 5, 0.05);
}

sub log_text {
    my $self = shift;
    open my $fh, '<', $self->error_log or return '';
    local $/;
    my $t = <$fh> // '';
    close $fh;
    return $t;
}

sub log_tail {
    my ($self, $n) = @_;
    $n //= 30;
    my @l = split /\n/, $self->log_text;
    @l = @l[-$n .. -1] if @l > $n;
    return join('', map { "# error_log: $_\n" } @l);
}

# ---- ab -------------------------------------------------------------------

# Run ApacheBench (bounded) and parse its summary:
#   my $r = Ev2Server::run_ab($url, '-n', 2000, '-c', 4, '-k');
# Returns {rc, complete, failed, non2xx (undef if the line is absent),
# output}.
sub run_ab {
    my ($url, @opts) = @_;
    my $timeout = 300;
    my ($rc, $out) = run_cmd(['timeout', '-k', '5', $timeout, 'ab', '-q', '-r', '-s', '30', @opts, $url]);
    my %r = (rc => $rc, output => $out);
    $r{complete} = $1 if $out =~ /^Complete requests:\s+(\d+)/m;
    $r{failed}   = $1 if $out =~ /^Failed requests:\s+(\d+)/m;
    $r{non2xx}   = $1 if $out =~ /^Non-2xx responses:\s+(\d+)/m;
    return \%r;
}

sub DESTROY {
    my $self = shift;
    local ($?, $@, $!);
    $self->stop if $self->{pid} && !$self->{stopped};
}

END {
    local ($?, $@, $!);
    for my $s (values %LIVE) {
        $s->stop(timeout => 10) if $s && !$s->{stopped};
    }
}

1;

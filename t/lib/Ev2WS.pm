# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2WS: a small WebSocket (RFC 6455) echo backend and client for the
# mod_proxy_wstunnel integration tests, with Perl core modules only.
#
#   my $be = Ev2WS::Backend->start;          # echo server on 127.0.0.1:$be->port
#   my $ws = Ev2WS::Client->connect(port => $httpd_port, path => '/ws')
#       or die $@;                           # HTTP Upgrade handshake, checked
#   $ws->send_text("hello");                 # masked frame
#   my ($op, $data) = $ws->recv_frame(10);   # undef on timeout/EOF ($ws->{error})
#   $ws->close;                              # close handshake (bounded)
#   $be->stop;                               # also done in DESTROY/END
#
# The backend forks one process per connection; its accept loop runs in its
# own process group, and stop() kills that group.  It answers the Upgrade
# handshake, echoes text and binary frames, answers pings and close frames;
# a plain (non-Upgrade) GET gets a short 200 "backend ok".  Every read on
# both sides is bounded; the backend exits on its own after max_time seconds.
package Ev2WS;

use strict;
use warnings;

use Digest::SHA qw(sha1_base64);
use MIME::Base64 qw(encode_base64);

our $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

sub accept_key {
    my $key = shift;
    my $a = sha1_base64($key . $GUID);
    $a .= '=' while length($a) % 4;
    return $a;
}

# Encode one frame.  $mask: 4-byte masking key (client frames) or undef.
sub encode_frame {
    my ($opcode, $payload, $mask) = @_;
    my $len = length $payload;
    my $f = chr(0x80 | $opcode);
    my $mbit = defined $mask ? 0x80 : 0;
    if ($len < 126) {
        $f .= chr($mbit | $len);
    }
    elsif ($len < 65536) {
        $f .= chr($mbit | 126) . pack('n', $len);
    }
    else {
        $f .= chr($mbit | 127) . pack('NN', int($len / 4294967296), $len % 4294967296);
    }
    if (defined $mask) {
        $f .= $mask . mask_payload($payload, $mask);
    }
    else {
        $f .= $payload;
    }
    return $f;
}

sub mask_payload {
    my ($p, $mask) = @_;
    my $len = length $p;
    return '' unless $len;
    my $m = substr($mask x (int($len / 4) + 1), 0, $len);
    return "$p" ^ $m;
}

# Decode one frame from the front of $$buf.  Returns (fin, opcode, payload)
# and removes it from the buffer, or () if the buffer holds no full frame.
sub decode_frame {
    my $buf = shift;
    return () if length($$buf) < 2;
    my ($b0, $b1) = unpack('CC', $$buf);
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        return () if length($$buf) < 4;
        $len = unpack('n', substr($$buf, 2, 2));
        $off = 4;
    }
    elsif ($len == 127) {
        return () if length($$buf) < 10;
        my ($hi, $lo) = unpack('NN', substr($$buf, 2, 8));
        $len = $hi * 4294967296 + $lo;
        $off = 10;
    }
    my $mask;
    if ($b1 & 0x80) {
        return () if length($$buf) < $off + 4;
        $mask = substr($$buf, $off, 4);
        $off += 4;
    }
    return () if length($$buf) < $off + $len;
    my $payload = substr($$buf, $off, $len);
    substr($$buf, 0, $off + $len, '');
    $payload = mask_payload($payload, $mask) if defined $mask;
    return (($b0 & 0x80) ? 1 : 0, $b0 & 0x0f, $payload);
}

# ---------------------------------------------------------------------------
package Ev2WS::Backend;

use strict;
use warnings;

use IO::Socket::INET ();
use IO::Select ();
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);
use Errno qw(EINTR EAGAIN);

our %LIVE;

sub start {
    my ($class, %a) = @_;
    my $max_time = $a{max_time} // 600;
    my $ls = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $a{port} // 0, Proto => 'tcp',
        Listen => 128, ReuseAddr => 1,
    ) or die "Ev2WS backend: cannot listen: $!";
    my $port = $ls->sockport;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        # The accept loop: its own process group so stop() reaches every
        # per-connection child too.  Never returns into the test's code.
        setpgrp(0, 0);
        $SIG{$_} = 'DEFAULT' for qw(HUP INT TERM PIPE);
        $SIG{PIPE} = 'IGNORE';
        my $deadline = time + $max_time;
        local $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
        my $sel = IO::Select->new($ls);
        while (time < $deadline) {
            next unless $sel->can_read(1);
            my $c = $ls->accept or next;
            my $k = fork;
            if (defined $k && !$k) {
                $SIG{CHLD} = 'DEFAULT';
                close $ls;
                eval { _serve($c, $deadline) };
                _exit(0);
            }
            close $c;
        }
        _exit(0);
    }
    close $ls;
    my $self = bless { pid => $pid, port => $port, owner => $$ }, $class;
    $LIVE{$pid} = $self;
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

sub _read_more {
    my ($c, $buf, $deadline) = @_;
    my $sel = IO::Select->new($c);
    while (1) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left > 5 ? 5 : $left);
        my $n = sysread($c, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return 0;
        }
        return 0 if $n == 0;
        $$buf .= $chunk;
        return $n;
    }
}

sub _write_all {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($c, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

sub _serve {
    my ($c, $deadline) = @_;
    my $buf = '';
    my $hdl = time + 30;
    $hdl = $deadline if $deadline < $hdl;
    while (index($buf, "\r\n\r\n") < 0) {
        return unless _read_more($c, \$buf, $hdl);
    }
    my $head = substr($buf, 0, index($buf, "\r\n\r\n") + 4, '');
    my %h;
    for (split /\r\n/, $head) {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*?)\s*$/;
    }
    if (($h{upgrade} // '') !~ /websocket/i || !defined $h{'sec-websocket-key'}) {
        my $body = "backend ok\n";
        _write_all($c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
        return;
    }
    my $accept = Ev2WS::accept_key($h{'sec-websocket-key'});
    _write_all($c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n") or return;
    # Echo frames; an idle connection is dropped after 120 s.
    while (1) {
        while (my ($fin, $op, $p) = Ev2WS::decode_frame(\$buf)) {
            if ($op == 8) {
                _write_all($c, Ev2WS::encode_frame(8, substr($p, 0, 2)));
                return;
            }
            if ($op == 9) {
                _write_all($c, Ev2WS::encode_frame(10, $p)) or return;
                next;
            }
            next if $op == 10;
            _write_all($c, Ev2WS::encode_frame($op, $p)) or return;
        }
        my $idle = time + 120;
        $idle = $deadline if $deadline < $idle;
        return unless _read_more($c, \$buf, $idle);
    }
}

sub stop {
    my $self = shift;
    my $pid = $self->{pid} or return;
    return unless $self->{owner} == $$;    # never from a forked copy
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    my $t = time + 5;
    while (time < $t) {
        last if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }
    if (waitpid($pid, WNOHANG) == 0) {
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    kill 'KILL', -$pid;    # per-connection children left in the group
    delete $LIVE{$pid};
    $self->{pid} = undef;
}

sub DESTROY {
    my $self = shift;
    local ($?, $@, $!);
    $self->stop if $self->{pid} && $self->{owner} == $$;
}

END {
    local ($?, $@, $!);
    $_->stop for grep { $_ && $_->{pid} && $_->{owner} == $$ } values %LIVE;
}

# ---------------------------------------------------------------------------
package Ev2WS::Client;

use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use Ev2HTTP ();

# Ev2WS::Client->connect(port => P, path => '/ws', timeout => 10)
# Returns a client after a checked 101 handshake, or undef with $@ set.
sub connect {
    my ($class, %a) = @_;
    my $timeout = $a{timeout} // 10;
    my $c = Ev2HTTP->connect(port => $a{port}, host => $a{host}, timeout => $timeout)
        or return undef;
    my $key = encode_base64(join('', map { chr(int rand 256) } 1 .. 16), '');
    my $req = "GET " . ($a{path} // '/') . " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n"
        . "User-Agent: ev2-test\r\n\r\n";
    unless ($c->send($req, $timeout)) {
        $@ = "handshake send failed: $!";
        return undef;
    }
    my $r = $c->read_response(timeout => $timeout);
    unless ($r) {
        $@ = 'no handshake response: ' . ($c->{error} // '?');
        return undef;
    }
    unless ($r->{status} == 101) {
        $@ = "handshake status $r->{status}";
        return undef;
    }
    my $want = Ev2WS::accept_key($key);
    my $got = $r->{headers}{'sec-websocket-accept'} // '';
    unless ($got eq $want) {
        $@ = "bad Sec-WebSocket-Accept '$got' (want '$want')";
        return undef;
    }
    return bless { c => $c, timeout => $timeout }, $class;
}

sub send_frame {
    my ($self, $op, $payload) = @_;
    my $mask = pack('N', int rand 4294967296);
    return $self->{c}->send(Ev2WS::encode_frame($op, $payload, $mask), $self->{timeout});
}

sub send_text { $_[0]->send_frame(1, $_[1]) }

# Next frame: (opcode, payload), or () on timeout/EOF ($self->{error}).
sub recv_frame {
    my ($self, $timeout) = @_;
    my $c = $self->{c};
    my $deadline = time + ($timeout // $self->{timeout});
    while (1) {
        my ($fin, $op, $p) = Ev2WS::decode_frame(\$c->{buf});
        return ($op, $p) if defined $op;
        my $n = $c->_fill($deadline);
        unless ($n) {
            $self->{error} = defined $n ? 'eof' : ($c->{error} // 'timeout');
            return ();
        }
    }
}

# Send a text message and wait for its echo; true if it came back intact.
sub echo {
    my ($self, $msg, $timeout) = @_;
    $self->send_text($msg) or do { $self->{error} = 'send failed'; return 0 };
    my ($op, $p) = $self->recv_frame($timeout);
    return 0 unless defined $op;
    unless ($op == 1 && $p eq $msg) {
        $self->{error} = "unexpected frame op=$op len=" . length($p);
        return 0;
    }
    return 1;
}

sub close {
    my $self = shift;
    my $c = $self->{c} or return;
    if ($c->{sock}) {
        $self->send_frame(8, pack('n', 1000));
        $self->recv_frame(2);    # the peer's close frame, bounded
    }
    $c->close;
    $self->{c} = undef;
}

1;

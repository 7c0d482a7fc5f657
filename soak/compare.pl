#!/usr/bin/perl
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# compare.pl: the summaries of several soak runs side by side, as markdown
# tables (used for docs/RELIABILITY.md).
#
#   perl soak/compare.pl build/soak/ours/summary.json build/soak/stock/summary.json
use strict;
use warnings;
use JSON::PP ();

my @S;
for my $f (@ARGV) {
    open my $fh, '<', $f or die "$f: $!\n";
    local $/;
    push @S, JSON::PP::decode_json(<$fh>);
}
@S or die "usage: compare.pl summary.json ...\n";

sub num {
    my ($v, $p) = @_;
    return '?' unless defined $v;
    return sprintf("%.${p}f", $v) if defined $p;
    return $v;
}

sub table {
    my ($title, @rows) = @_;    # rows: [label, @values]
    my $t = "| $title | " . join(' | ', map { "$_->{mpm} ($_->{duration_s} s)" } @S) . " |\n";
    $t .= '|---|' . join('', map { '---:|' } @S) . "\n";
    $t .= '| ' . join(' | ', @$_) . " |\n" for @rows;
    return "$t\n";
}

sub union { my %u; for my $h (@_) { $u{$_} = 1 for keys %{ $h // {} } } return sort keys %u }

my $out = '';
$out .= table('run',
    ['verdict', map { "**$_->{verdict}**" } @S],
    ['started', map { $_->{started} } @S],
    ['admin event period (s)', map { $_->{period_s} } @S],
    ['MaxConnectionsPerChild', map { $_->{max_connections_per_child} } @S],
    ['samples (every 5 s)', map { $_->{samples} } @S],
    ['load average at the end (2 cores, shared)', map { $_->{host}{loadavg} } @S]);

my @kinds = grep { !/^_/ } union(map { $_->{requests} } @S);
$out .= table('successful checked requests by kind',
    (map { my $k = $_; [$k, map { $_->{requests}{$k} // 0 } @S] } @kinds),
    ['total', map { my $s = $_; my $n = 0; $n += $s->{requests}{$_} // 0 for @kinds; $n } @S],
    ['keep-alive / pipeline retries (not failures)', map { $_->{requests}{_retries} // 0 } @S],
    ['h2 retries of a stream a GOAWAY refused (not failures)', map { $_->{requests}{_h2_retries} // 0 } @S]);

my @ev = union(map { $_->{events} } @S);
$out .= table('failures survived',
    (map { my $k = $_; ["admin event: $k", map { $_->{events}{$k} // 0 } @S] } @ev),
    ['child exits seen (all causes)', map { $_->{child_exits} } @S],
    ['child exits not caused by our SIGKILL (restarts, recycling)', map { $_->{child_exits_not_killed} } @S]);

my @cl = union(map { $_->{failures}{by_class} } @S);
$out .= table('failures by class (count / bound)',
    (map { my $k = $_; [$k, map { ($_->{failures}{by_class}{$k} // 0) . ' / '
        . ($k eq 'unexplained' ? 0 : $_->{admin_bounds}{$k} // '-') } @S] } @cl),
    (map { my $t = $_; (
        ["$t: transport errors explained by a server event", map { $_->{tools}{$t}{explained} // 0 } @S],
        ["$t: errors in a restart/graceful-stop window", map { $_->{tools}{$t}{down} // 0 } @S],
        ["$t: unexplained", map { $_->{tools}{$t}{unexplained} // 0 } @S]) } union(map { $_->{tools} } @S)));

$out .= table('resources after warm-up (linear fits)',
    ['parent descriptors (min-max)', map { "$_->{slopes}{parent}{fd_min}-$_->{slopes}{parent}{fd_max}" } @S],
    ['parent descriptor slope (/min)', map { num($_->{slopes}{parent}{fd_slope_per_min}, 2) } @S],
    ['parent fit: samples / minutes (longest-lived parent, from its first restart)',
        map { num($_->{slopes}{parent}{samples}) . ' / ' . num($_->{slopes}{parent}{minutes}, 1) } @S],
    ['parent RSS mean (KiB)', map { num($_->{slopes}{parent}{rss_mean_kib}, 0) } @S],
    ['parent RSS slope (KiB/min; judged, bound ' . ($S[0]{bounds}{parent_rss_kib_min} // '?') . ')',
        map { num($_->{slopes}{parent}{rss_kib_per_min}, 1) } @S],
    ['parent PSS mean (KiB)', map { num($_->{slopes}{parent}{pss_mean_kib}, 0) } @S],
    ['parent PSS slope (KiB/min)', map { num($_->{slopes}{parent}{pss_kib_per_min}, 1) } @S],
    ['worker child PSS mean (KiB)', map { num($_->{slopes}{child_mean_pss}{mean_kib}, 0) } @S],
    ['worker child PSS slope (KiB/min; judged, bound ' . ($S[0]{bounds}{child_pss_kib_min} // '?') . ')', map { num($_->{slopes}{child_mean_pss}{kib_per_min}, 1) } @S],
    ['worker child RSS mean (KiB)', map { num($_->{slopes}{child_mean_rss}{mean_kib}, 0) } @S],
    ['worker child RSS slope (KiB/min)', map { num($_->{slopes}{child_mean_rss}{kib_per_min}, 1) } @S],
    ['per-child PSS slope over its own life, median / max (KiB/min)', map {
        num($_->{slopes}{per_child_pss}{median_kib_per_min}, 1) . ' / '
        . num($_->{slopes}{per_child_pss}{max_kib_per_min}, 1)
        . " ($_->{slopes}{per_child_pss}{children} children)" } @S],
    ['total PSS mean (KiB)', map { num($_->{slopes}{total_pss}{mean_kib}, 0) } @S],
    ['total PSS slope (KiB/min; judged, bound ' . ($S[0]{bounds}{total_pss_kib_min} // '?') . ')', map { num($_->{slopes}{total_pss}{kib_per_min}, 1) } @S],
    ['total descriptors mean', map { num($_->{slopes}{total_fds}{mean}, 0) } @S],
    ['total descriptor slope (/min)', map { num($_->{slopes}{total_fds}{per_min}, 2) } @S],
    ['worker child threads (mean)', map { num($_->{slopes}{child_mean_threads}{mean}, 1) } @S]);

$out .= table('end state (10 s after the load)',
    ['busy slots (R/W/K) besides the status request', map { $_->{end_state}{busy_slots} } @S],
    ['mod_status connections', map { $_->{end_state}{status_conns} } @S],
    ['TCP sockets held by server processes', map { $_->{end_state}{tcp_held} } @S],
    ['processes stopping', map { $_->{end_state}{stopping_procs} } @S],
    ['idle child descriptors (fresh child)', map { join(',', @{ $_->{end_state}{child_fds} // [] })
        . " ($_->{end_state}{base_child_fds})" } @S],
    ['crash lines in the error log', map { scalar @{ $_->{crash_lines} } } @S]);

my @crit = map { $_->{name} } @{ $S[0]{criteria} };
$out .= table('criteria',
    map { my $n = $_; [$n, map { my ($c) = grep { $_->{name} eq $n } @{ $_->{criteria} };
        $c ? ($c->{ok} ? 'ok' : '**failed**') : '-' } @S] } @crit);
print $out;

/*
 * common/cpu_load.h: how busy this process has kept the machine's cores lately, for decisions
 * that trade CPU for latency (the group commits of ct/log_writer.c and ca/audit_log.c: with cores
 * to spare a batch need not wait for more company).
 *
 * cpu_load_recent: the process's CPU time (all threads) over the last sampling period (about
 * 50 ms, the latest complete one) divided by that wall time and the online cores: 0 idle,
 * 1 every core busy. Sampling is lazy: a call reads the process clock (a system call) at most
 * once per period; other calls read the stored value (atomics, no lock). Any thread.
 */
#ifndef FULCRUM_COMMON_CPU_LOAD_H
#define FULCRUM_COMMON_CPU_LOAD_H

double cpu_load_recent(void);

/* How much of a group-commit window a batch should wait for company when no announced request
 * is outstanding: 0 while the load is at most CPU_LOAD_LOW (latency is what to save: commit at
 * once), 1 from CPU_LOAD_FULL on (CPU is: the whole window, to share each fsync more widely),
 * linear between. Graded rather than a switch at one load: a server near the switch (a moderate
 * load whose 50 ms periods straddle it) would wait whole windows in some periods and none in
 * others, and its tail latency would carry whole windows. cpu_load_window_share_at maps a load;
 * cpu_load_window_share maps cpu_load_recent(). */
#define CPU_LOAD_LOW 0.75
#define CPU_LOAD_FULL 0.85
double cpu_load_window_share_at(double load);
double cpu_load_window_share(void);

/* A writer waiting for its window is woken early (the last announced request is done, and the
 * share makes its deadline earlier) only when that brings its commit at least this many ms
 * sooner: each wake-up is a futex call and two context switches. Near full load the share is
 * close to 1 and the gain under a millisecond; waking for it anyway cost 14-39 us of CPU per
 * issuance (3 pairs, 64 connections, 3-6 % of the throughput). At half load the share is near 0
 * and the wake-up still ends a wait of most of the window. */
#define WINDOW_WAKE_MIN_MS 2

#endif

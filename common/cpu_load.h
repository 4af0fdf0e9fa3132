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

/* Above this load CPU is what to save (e.g. by batching fsyncs), below it latency. */
#define CPU_LOAD_BUSY 0.8

#endif

/* nnmesh/capacity.h — what this machine can do right now, measured rather than declared.
 *
 * Compute: short probes of the real kernels through the engine (the same executor that
 * runs models), one per op class: 3x3 convolution, 1x1 convolution, depthwise 3x3
 * convolution and fully connected, interleaved round-robin for the whole budget so that
 * every class sees the same machine conditions. The result is GFLOP/s per class.
 *
 * A probe lasts a fraction of a second, shorter than a CFS bandwidth period (100 ms by
 * default): a process under a cgroup CPU quota may run a whole probe at full speed before
 * the kernel throttles it. So the CPU time the probes consumed is also measured, and the
 * throughput is flops / max(wall time, CPU time / quota cores): what the node can sustain
 * under its quota. Without a quota this is the wall-clock throughput. (Measured here: a
 * process under a 25% quota loses its stalls mostly between the timed runs, so per-run
 * wall times alone report full speed; the time between runs is therefore spread over the
 * classes too.)
 *
 * Memory: /proc/meminfo MemAvailable, capped by the memory cgroup's limit minus its usage
 * (cgroup v1 or v2). Load: /proc/loadavg and the CPU quota of the process's cgroup and its
 * ancestors (v1 cpu.cfs_quota_us / cpu.cfs_period_us, or v2 cpu.max). */
#ifndef NNMESH_CAPACITY_H
#define NNMESH_CAPACITY_H

#include <stddef.h>
#include <stdint.h>

#include "nnmesh/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nnm_probe {
    NNM_PROBE_CONV3X3 = 0,     /* 32 -> 32 channels, 28x28, pad 1 */
    NNM_PROBE_CONV1X1,         /* 64 -> 64 channels, 28x28 */
    NNM_PROBE_DWCONV3X3,       /* 128 channels depthwise, 28x28, pad 1 */
    NNM_PROBE_FC,              /* 1024 -> 1024, batch 1 */
    NNM_PROBE__COUNT
} nnm_probe;

typedef struct nnm_capacity {
    int threads;                        /* kernel threads the probes used */
    int cpus_online;
    double cpu_quota;                   /* cores allowed by the cgroup quota; 0: no quota */
    double gflops[NNM_PROBE__COUNT];    /* sustained GFLOP/s per class (see above) */
    double probe_flops[NNM_PROBE__COUNT];   /* flops of one run of each probe */
    int runs[NNM_PROBE__COUNT];         /* timed runs of each probe */
    double wall_ms;                     /* whole measurement, graph building included */
    double probe_cpu_ms;                /* CPU time the timed runs took (all threads) */
    double probe_wall_ms;               /* wall time of the timed rounds */
    uint64_t mem_available;             /* MemAvailable, bytes */
    uint64_t mem_cgroup_limit;          /* bytes; 0: no limit */
    uint64_t mem_cgroup_usage;          /* bytes (meaningful when a limit is set) */
    uint64_t mem_free;                  /* what the node may use: min of the two */
    double load1, load5, load15;        /* /proc/loadavg */
    int tasks_running, tasks_total;
} nnm_capacity;

/* Name of a probe class ("conv3x3", "conv1x1", "dwconv3x3", "fc"), or "?". */
const char *nnm_probe_name(nnm_probe p);

/* Measures the machine into *cap. threads: kernel threads for the probes (0: every online
 * CPU). budget_ms: the wall time for the timed runs (0: 200; at most 10000); building the
 * probes and one warm-up run each come on top (a few milliseconds).
 * Errors: NNM_EINVAL (threads < 0 or budget out of range), NNM_ENOMEM, NNM_EBACKEND (the
 * engine failed on a probe: the message names it). Missing /proc or cgroup files are not
 * errors: the fields stay 0. */
nnm_err nnm_capacity_measure(nnm_capacity *cap, int threads, int budget_ms, nnm_diag *diag);

/* Reads only the memory and load fields (cheap; for periodic adverts). Never fails. */
void nnm_capacity_get_load(nnm_capacity *cap);

/* Writes cap as one JSON object (NUL-terminated) into out (len bytes; 1024 is enough).
 * Errors: NNM_ERANGE (len too small; out is then ""). */
nnm_err nnm_capacity_encode_json(char *out, size_t len, const nnm_capacity *cap);

#ifdef __cplusplus
}
#endif
#endif

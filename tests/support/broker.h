/* tests/support/broker.h — integration-test helper: a private mosquitto on a free 127.0.0.1
 * port, with its config, log and pid in a fresh temporary directory; stopped by pid. Also a
 * pair of brokers bridged on "nnmesh/#" (B connects to A), like a two-site mesh. */
#ifndef NNM_TEST_BROKER_H
#define NNM_TEST_BROKER_H

#include <sys/types.h>

typedef struct test_broker {
    pid_t pid;                  /* 0 when not running */
    int port;
    char dir[256];              /* temporary directory: mosquitto.conf, mosquitto.log */
    char uri[64];               /* "tcp://127.0.0.1:PORT" */
    char extra[1024];           /* extra config lines, kept for restarts */
} test_broker;

/* A free loopback TCP port (bound then released), or -1. */
int test_broker_free_port(void);

/* Starts mosquitto ($MOSQUITTO, else /usr/sbin/mosquitto) on port (0: pick a free one) with
 * set_tcp_nodelay true (as the example brokers) and extra config lines (may be NULL;
 * $NNM_TEST_MOSQUITTO_EXTRA is appended too, for experiments), and waits up to 10 s until it
 * accepts connections.
 * Returns 0, or -1 with a message on stderr (the log is printed). */
int test_broker_start(test_broker *b, int port, const char *extra);

/* Stops the broker by pid (SIGTERM, then SIGKILL after 5 s) and reaps it. Keeps dir. */
void test_broker_stop(test_broker *b);

/* Stops and starts again on the same port with the same config. Returns 0 or -1. */
int test_broker_restart(test_broker *b);

/* Stops the broker if running and removes its directory. Safe on a zeroed struct. */
void test_broker_cleanup(test_broker *b);

/* Starts A, then B bridged to A with "topic nnmesh/# both 1", and waits up to 20 s until a
 * message published on each side arrives on the other. Returns 0 or -1. */
int test_broker_start_bridged(test_broker *a, test_broker *b);

/* Nonzero when the mosquitto binary is available (tests skip otherwise). */
int test_broker_available(void);

#endif

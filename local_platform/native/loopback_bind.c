/*
 * loopback_bind: an LD_PRELOAD shim for servers that have neither a bind-address setting nor client
 * authentication (the Hive 2.3 metastore's Thrift server). Two jobs:
 *
 * 1. bind(): every bind to a wildcard address becomes a bind to loopback, so nothing listens on another interface.
 *      0.0.0.0 -> 127.0.0.1
 *      ::      -> ::ffff:127.0.0.1 (a dual-stack socket then still accepts IPv4 clients of 127.0.0.1)
 *    Any other address is passed through unchanged.
 *
 * 2. accept() / accept4(), when TAP_METASTORE_TICKET is set in the server's environment: the accept gate. A
 *    loopback connection is admitted only if a process holding the client end of it carries the install's ticket:
 *      - `TAP_METASTORE_TICKET=<ticket>` in its environment as it was started (/proc/PID/environ): how the platform
 *        hands it to its own services and jobs (Trino, Spark, Airflow tasks), or
 *      - an open file descriptor on the ticket file (TAP_METASTORE_TICKET_FILE, mode 0600): how an in-process
 *        client such as the test session or `make status` carries it.
 *    The client end is found in /proc/net/tcp{,6} (its local port is our peer's port and its remote port is ours),
 *    its holders by the socket inode in /proc/PID/fd. Any other connection is closed at once and logged to stderr;
 *    the client sees the connection closed before any Thrift reply. Reading another user's /proc/PID/{fd,environ}
 *    needs that user's uid or root: a client of another user whom the server cannot inspect is refused.
 *    Processes admitted recently are looked at first: a long-lived client (Trino, a Spark driver) that opens
 *    another connection is found without walking every process's descriptors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            static const unsigned char mapped_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
            memcpy(&v6.sin6_addr, mapped_loopback, sizeof mapped_loopback);
            return real_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
        }
    }
    return real_bind(fd, addr, len);
}

/* The accept gate ------------------------------------------------------------------------------------------------ */

static int port_of(const struct sockaddr_storage *sa) {
    if (sa->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    if (sa->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    return -1;
}

/* The inode of the socket whose local port is client_port and remote port server_port, or 0. */
static unsigned long client_socket_inode(int client_port, int server_port) {
    static const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        FILE *f = fopen(tables[t], "re");
        if (f == NULL) {
            continue;
        }
        char line[512];
        unsigned long found = 0;
        while (found == 0 && fgets(line, sizeof line, f) != NULL) {
            char local[64], remote[64];
            unsigned long inode;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %*s %*s %lu", local, remote, &inode) != 3) {
                continue;
            }
            const char *lp = strrchr(local, ':'), *rp = strrchr(remote, ':');
            if (lp != NULL && rp != NULL && strtol(lp + 1, NULL, 16) == client_port &&
                strtol(rp + 1, NULL, 16) == server_port) {
                found = inode;
            }
        }
        fclose(f);
        if (found != 0) {
            return found;
        }
    }
    return 0;
}

static int environ_has(int pid, const char *entry) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while (buf != NULL && (n = read(fd, buf + used, cap - used)) > 0) {
        used += (size_t)n;
        if (used == cap && cap < (1 << 22)) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    close(fd);
    int found = 0;
    if (buf != NULL) {
        buf[used] = '\0';
        size_t want = strlen(entry);
        for (size_t i = 0; i < used && !found; i += strlen(buf + i) + 1) {
            found = strlen(buf + i) == want && memcmp(buf + i, entry, want) == 0;
        }
        free(buf);
    }
    return found;
}

static int descending(const void *a, const void *b) {
    return *(const int *)b - *(const int *)a;
}

/* Does process `pid` hold the socket (socket_link)? Sets *holds_ticket_file if it has the ticket file open. */
static int holds_socket(int pid, const char *socket_link, const char *ticket_file, int *holds_ticket_file) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    int holds = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[PATH_MAX], target[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) {
            continue;
        }
        target[n] = '\0';
        if (strcmp(target, socket_link) == 0) {
            holds = 1;
        } else if (ticket_file != NULL && strcmp(target, ticket_file) == 0) {
            *holds_ticket_file = 1;
        }
    }
    closedir(d);
    return holds;
}

#define RECENT 16
static int recent[RECENT];
static int recent_next;
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;

/* Does process `pid` hold the socket? 1 if it also carries the ticket, 0 if not, -1 if it does not hold it. */
static int holder_verdict(int pid, const char *socket_link, const char *ticket_file, const char *entry) {
    int holds_ticket_file = 0;
    if (!holds_socket(pid, socket_link, ticket_file, &holds_ticket_file)) {
        return -1;
    }
    return holds_ticket_file || environ_has(pid, entry);
}

/* 1 if a holder of the client end of `conn` carries the ticket; otherwise 0, and *holder names one holder. */
static int admitted(int conn, const char *ticket, int *holder, int *client_port) {
    struct sockaddr_storage self, peer;
    socklen_t self_len = sizeof self, peer_len = sizeof peer;
    *holder = -1;
    if (getsockname(conn, (struct sockaddr *)&self, &self_len) != 0 ||
        getpeername(conn, (struct sockaddr *)&peer, &peer_len) != 0) {
        return 0;
    }
    *client_port = port_of(&peer);
    unsigned long inode = client_socket_inode(*client_port, port_of(&self));
    if (inode == 0) {
        return 0;
    }
    char socket_link[64], entry[512];
    snprintf(socket_link, sizeof socket_link, "socket:[%lu]", inode);
    snprintf(entry, sizeof entry, "TAP_METASTORE_TICKET=%s", ticket);
    const char *ticket_file = getenv("TAP_METASTORE_TICKET_FILE");

    int candidates[RECENT];
    pthread_mutex_lock(&recent_lock);
    memcpy(candidates, recent, sizeof recent);
    pthread_mutex_unlock(&recent_lock);
    for (int i = 0; i < RECENT; i++) {
        if (candidates[i] > 0) {
            int verdict = holder_verdict(candidates[i], socket_link, ticket_file, entry);
            if (verdict >= 0) {
                *holder = candidates[i];
                return verdict;
            }
        }
    }

    /* Newest processes first: a client that is not among the recent ones is most often a young process. */
    int count = 0, capacity = 1024, self_pid = (int)getpid();
    int *pids = malloc(sizeof(int) * (size_t)capacity);
    DIR *proc = opendir("/proc");
    if (proc == NULL || pids == NULL) {
        free(pids);
        if (proc != NULL) {
            closedir(proc);
        }
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == self_pid) {
            continue;
        }
        if (count == capacity) {
            int *bigger = realloc(pids, sizeof(int) * (size_t)capacity * 2);
            if (bigger == NULL) {
                break;
            }
            pids = bigger;
            capacity *= 2;
        }
        pids[count++] = (int)pid;
    }
    closedir(proc);
    qsort(pids, (size_t)count, sizeof(int), descending);
    int ok = 0;
    for (int i = 0; i < count && *holder < 0; i++) {
        int verdict = holder_verdict(pids[i], socket_link, ticket_file, entry);
        if (verdict >= 0) {
            *holder = pids[i];
            ok = verdict;
        }
    }
    free(pids);
    if (ok) {
        pthread_mutex_lock(&recent_lock);
        recent[recent_next] = *holder;
        recent_next = (recent_next + 1) % RECENT;
        pthread_mutex_unlock(&recent_lock);
    }
    return ok;
}

static int gated(int conn) {
    const char *ticket = getenv("TAP_METASTORE_TICKET");
    if (conn < 0 || ticket == NULL || ticket[0] == '\0') {
        return conn;
    }
    int holder, client_port = -1;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int ok = admitted(conn, ticket, &holder, &client_port);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    if (ok) {
        if (ms >= 1000) {
            fprintf(stderr, "metastore accept gate: admitted process %d after %ld ms\n", holder, ms);
        }
        return conn;
    }
    fprintf(stderr, "metastore accept gate: refused the connection from port %d (process %d): no ticket (%ld ms)\n",
            client_port, holder, ms);
    close(conn);
    return -2; /* refused: accept the next connection */
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static accept_fn real_accept = NULL;
    if (real_accept == NULL) {
        real_accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    }
    for (;;) {
        int conn = gated(real_accept(fd, addr, len));
        if (conn != -2) {
            return conn;
        }
    }
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static accept4_fn real_accept4 = NULL;
    if (real_accept4 == NULL) {
        real_accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    }
    for (;;) {
        int conn = gated(real_accept4(fd, addr, len, flags));
        if (conn != -2) {
            return conn;
        }
    }
}

/* test_client.c — the blocking client against scripted fake servers.
 *
 * A fake server (one thread, a loopback socket on port 0) accepts one
 * connection, reads the client's first request, then plays a script: the
 * reply bytes all at once or one byte at a time, nothing at all, or a
 * close. This checks what the e2e tests cannot make the real server do:
 * a hostile or broken server must give the client a clear error, never an
 * unbounded allocation or a hang.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/client.h"

typedef enum { PLAY_ALL, PLAY_BYTES, PLAY_SILENT, PLAY_CLOSE } play_mode;

typedef struct fake {
    int lfd, port;
    pthread_t th;
    play_mode mode;
    const unsigned char *reply;
    size_t len;
    int requests; /* read this many request bytes chunks before answering */
    char got[4096]; /* what the client sent */
    size_t got_n;
} fake;

static void *fake_main(void *p) {
    fake *f = p;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    ssize_t n = recv(fd, f->got, sizeof f->got, 0);
    if (n > 0) f->got_n = (size_t)n;
    if (f->mode == PLAY_ALL) {
        ssize_t w = send(fd, f->reply, f->len, MSG_NOSIGNAL);
        (void)w;
    } else if (f->mode == PLAY_BYTES) {
        for (size_t i = 0; i < f->len; i++) {
            ssize_t w = send(fd, f->reply + i, 1, MSG_NOSIGNAL);
            (void)w;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (f->mode == PLAY_SILENT) {
        char b[256];
        while (recv(fd, b, sizeof b, 0) > 0) {
        }
    }
    close(fd);
    return NULL;
}

static void fake_start(fake *f, play_mode mode, const void *reply, size_t len) {
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->reply = reply;
    f->len = len;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_join(fake *f) {
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static rp_client *fake_connect(const fake *f, uint32_t timeout_ms) {
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    rp_client *c = NULL;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_connect(addr, timeout_ms, &c, &eb), RP_OK);
    return c;
}

/* [1, 1, nil, {"ok": true}] */
static const unsigned char good_reply[] = {0x94, 0x01, 0x01, 0xc0, 0x81, 0xa2, 'o', 'k', 0xc3};

static void test_good_reply_in_one_piece_and_byte_by_byte(void **state) {
    (void)state;
    for (int mode = PLAY_ALL; mode <= PLAY_BYTES; mode++) {
        fake f;
        fake_start(&f, (play_mode)mode, good_reply, sizeof good_reply);
        rp_client *c = fake_connect(&f, 5000);
        msgpack_object res;
        rp_errbuf eb = {0};
        assert_int_equal(rp_client_call(c, "ping", NULL, 0, &res, &eb), RP_OK);
        assert_int_equal(res.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(res.via.map.size, 1);
        assert_true(res.via.map.ptr[0].val.via.boolean);
        assert_false(rp_client_broken(c));
        rp_client_close(c);
        fake_join(&f);
        /* what the client sent: [0, 1, "ping", []] */
        static const unsigned char want[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x90};
        assert_int_equal(f.got_n, sizeof want);
        assert_memory_equal(f.got, want, sizeof want);
    }
}

static void test_params_are_wrapped_in_an_array(void **state) {
    (void)state;
    fake f;
    fake_start(&f, PLAY_ALL, good_reply, sizeof good_reply);
    rp_client *c = fake_connect(&f, 5000);
    static const char params[] = {(char)0x81, (char)0xa2, 'i', 'd', (char)0xa1, 'x'};
    assert_int_equal(rp_client_call(c, "customer.get", params, sizeof params, NULL, NULL), RP_OK);
    rp_client_close(c);
    fake_join(&f);
    static const unsigned char want[] = {0x94, 0x00, 0x01, 0xac, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '.',
                                         'g', 'e', 't', 0x91, 0x81, 0xa2, 'i', 'd', 0xa1, 'x'};
    assert_int_equal(f.got_n, sizeof want);
    assert_memory_equal(f.got, want, sizeof want);
}

static void test_server_error_keeps_client_usable(void **state) {
    (void)state;
    /* [1, 1, {"code": "NOT_FOUND", "message": "no such customer"}, nil] */
    static const unsigned char rep[] = {0x94, 0x01, 0x01, 0x82, 0xa4, 'c', 'o', 'd', 'e', 0xa9, 'N', 'O', 'T',
                                        '_', 'F', 'O', 'U', 'N', 'D', 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e',
                                        0xb0, 'n', 'o', ' ', 's', 'u', 'c', 'h', ' ', 'c', 'u', 's', 't', 'o',
                                        'm', 'e', 'r', 0xc0};
    fake f;
    fake_start(&f, PLAY_ALL, rep, sizeof rep);
    rp_client *c = fake_connect(&f, 5000);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_call(c, "customer.get", NULL, 0, NULL, &eb), RP_NOT_FOUND);
    assert_string_equal(eb.msg, "no such customer");
    assert_false(rp_client_broken(c));
    assert_int_equal(rp_client_pending(c), 0);
    rp_client_close(c);
    fake_join(&f);
}

/* A length lie from the server: rejected after its header, client broken. */
static void test_hostile_length_lie(void **state) {
    (void)state;
    static const unsigned char rep[] = {0x94, 0x01, 0x01, 0xc0, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    fake f;
    fake_start(&f, PLAY_ALL, rep, sizeof rep);
    rp_client *c = fake_connect(&f, 5000);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_INTERNAL);
    assert_non_null(strstr(eb.msg, "bad reply"));
    assert_true(rp_client_broken(c));
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_UNAVAILABLE);
    rp_client_close(c);
    fake_join(&f);
}

/* Deep nesting beyond the client's limit. */
static void test_hostile_nesting(void **state) {
    (void)state;
    static unsigned char rep[4 + 200];
    memcpy(rep, (const unsigned char[]){0x94, 0x01, 0x01, 0xc0}, 4);
    memset(rep + 4, 0x91, 200);
    fake f;
    fake_start(&f, PLAY_ALL, rep, sizeof rep);
    rp_client *c = fake_connect(&f, 5000);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_INTERNAL);
    assert_true(rp_client_broken(c));
    rp_client_close(c);
    fake_join(&f);
}

/* Valid MessagePack that is not a reply, and a reply to another msgid. */
static void test_not_a_reply_and_wrong_msgid(void **state) {
    (void)state;
    static const unsigned char notrep[] = {0x93, 0x01, 0x01, 0xc0};
    static const unsigned char other[] = {0x94, 0x01, 0x05, 0xc0, 0xc0};
    const unsigned char *reps[] = {notrep, other};
    size_t lens[] = {sizeof notrep, sizeof other};
    for (int i = 0; i < 2; i++) {
        fake f;
        fake_start(&f, PLAY_ALL, reps[i], lens[i]);
        rp_client *c = fake_connect(&f, 5000);
        rp_errbuf eb = {0};
        assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_INTERNAL);
        assert_true(rp_client_broken(c));
        rp_client_close(c);
        fake_join(&f);
    }
}

/* msgid 0: an error the server sends before closing (e.g. too many
 * connections) is reported as the server's error. */
static void test_unsolicited_error(void **state) {
    (void)state;
    static const unsigned char rep[] = {0x94, 0x01, 0x00, 0x82, 0xa4, 'c', 'o', 'd', 'e', 0xab, 'U', 'N', 'A',
                                        'V', 'A', 'I', 'L', 'A', 'B', 'L', 'E', 0xa7, 'm', 'e', 's', 's', 'a',
                                        'g', 'e', 0xa4, 'b', 'u', 's', 'y', 0xc0};
    fake f;
    fake_start(&f, PLAY_ALL, rep, sizeof rep);
    rp_client *c = fake_connect(&f, 5000);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_UNAVAILABLE);
    assert_string_equal(eb.msg, "busy");
    assert_true(rp_client_broken(c));
    rp_client_close(c);
    fake_join(&f);
}

static void test_close_and_timeout(void **state) {
    (void)state;
    fake f;
    fake_start(&f, PLAY_CLOSE, NULL, 0);
    rp_client *c = fake_connect(&f, 5000);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_UNAVAILABLE);
    assert_true(rp_client_broken(c));
    rp_client_close(c);
    fake_join(&f);

    fake_start(&f, PLAY_SILENT, NULL, 0);
    c = fake_connect(&f, 200);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_UNAVAILABLE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 150 && ms < 3000);
    assert_non_null(strstr(eb.msg, "timed out"));
    rp_client_close(c);
    fake_join(&f);
}

static void test_usage_errors(void **state) {
    (void)state;
    rp_client *c = NULL;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_connect("no-port-here", 100, &c, &eb), RP_BAD_REQUEST);
    assert_null(c);
    /* a port nobody listens on (bound then closed) */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(rp_client_connect(addr, 1000, &c, &eb), RP_UNAVAILABLE);
    assert_null(c);

    fake f;
    fake_start(&f, PLAY_ALL, good_reply, sizeof good_reply);
    c = fake_connect(&f, 5000);
    rp_client_reply r;
    assert_int_equal(rp_client_recv(c, &r, &eb), RP_BAD_REQUEST); /* nothing pending */
    uint32_t id = 0;
    assert_int_equal(rp_client_send(c, "ping", NULL, 0, &id, &eb), RP_OK);
    assert_int_equal(id, 1);
    assert_int_equal(rp_client_call(c, "ping", NULL, 0, NULL, &eb), RP_BAD_REQUEST); /* 1 pending */
    assert_int_equal(rp_client_recv(c, &r, &eb), RP_OK);
    assert_int_equal(r.msgid, 1);
    assert_int_equal(r.rc, RP_OK);
    assert_int_equal(rp_client_pending(c), 0);
    rp_client_close(c);
    fake_join(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_reply_in_one_piece_and_byte_by_byte),
        cmocka_unit_test(test_params_are_wrapped_in_an_array),
        cmocka_unit_test(test_server_error_keeps_client_usable),
        cmocka_unit_test(test_hostile_length_lie),
        cmocka_unit_test(test_hostile_nesting),
        cmocka_unit_test(test_not_a_reply_and_wrong_msgid),
        cmocka_unit_test(test_unsolicited_error),
        cmocka_unit_test(test_close_and_timeout),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

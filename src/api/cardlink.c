/* cardlink.c — signed links of the agent's page (cardlink.h). */
#include "api/cardlink.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/siphash.h"

static uint8_t proc_key[RP_SIPHASH_KEY];
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;

static void proc_key_init(void) {
    size_t got = 0;
    while (got < sizeof proc_key) {
        ssize_t n = getrandom(proc_key + got, sizeof proc_key - got, 0);
        if (n > 0) got += (size_t)n;
    }
}

static void link_key(const rp_config *cfg, uint8_t key[RP_SIPHASH_KEY]) {
    if (cfg->card_link_secret[0]) {
        static const uint8_t zero[RP_SIPHASH_KEY] = {0};
        rp_siphash128(cfg->card_link_secret, strlen(cfg->card_link_secret), zero, key);
        return;
    }
    pthread_once(&proc_once, proc_key_init);
    memcpy(key, proc_key, RP_SIPHASH_KEY);
}

void rp_cardlink_sign(const rp_config *cfg, const char *kind, const char *val, size_t vlen,
                      int64_t exp, char out[RP_CARDLINK_SIG_HEX + 1]) {
    uint8_t key[RP_SIPHASH_KEY], tag[RP_SIPHASH_OUT];
    link_key(cfg, key);
    char msg[512];
    size_t kl = strlen(kind);
    size_t n = 0;
    static const char pre[] = "rapport-card-v1";
    memcpy(msg, pre, sizeof pre); /* with its NUL */
    n = sizeof pre;
    if (kl > 16) kl = 16;
    memcpy(msg + n, kind, kl);
    n += kl;
    msg[n++] = '\0';
    if (vlen > 300) vlen = 300; /* ids, phones, emails are far shorter (the api refuses longer) */
    memcpy(msg + n, val, vlen);
    n += vlen;
    msg[n++] = '\0';
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%lld", (long long)exp);
    rp_siphash128(msg, n, key, tag);
    for (int i = 0; i < RP_SIPHASH_OUT; i++) snprintf(out + 2 * i, 3, "%02x", tag[i]);
}

bool rp_cardlink_valid(const rp_config *cfg, const char *kind, const char *val, size_t vlen,
                       int64_t exp, const char *sig, int64_t now) {
    char want[RP_CARDLINK_SIG_HEX + 1];
    rp_cardlink_sign(cfg, kind, val, vlen, exp, want);
    if (strlen(sig) != RP_CARDLINK_SIG_HEX) return false;
    unsigned diff = 0;
    for (int i = 0; i < RP_CARDLINK_SIG_HEX; i++) diff |= (unsigned)(want[i] ^ sig[i]);
    return diff == 0 && now <= exp;
}

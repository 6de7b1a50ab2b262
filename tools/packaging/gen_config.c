/* gen_config.c — write the commented example config from the settings table.
 *
 *   gen_config OUT [KEY=VALUE...]
 *
 * Writes OUT (a temporary file renamed into place, so a failed run leaves
 * no half file): every setting of src/core/config.c with its default and the
 * reason for it, commented out, except those given as KEY=VALUE, which are
 * written as live lines (the installed rapportd.conf sets data to the
 * service's state directory this way). Run at build time by
 * cmake/install.cmake; not installed. Exit 0, or 2 on a bad argument, 1 on
 * a write error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"

static void put_line(const char *line, void *arg) {
    FILE *f = arg;
    fputs(line, f);
    fputc('\n', f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gen_config OUT [KEY=VALUE...]\n");
        return 2;
    }
    static rp_config cfg; /* large (tokens): not on the stack */
    rp_config_defaults(&cfg);
    for (int i = 2; i < argc; i++) {
        char key[64];
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof key) {
            fprintf(stderr, "gen_config: expected KEY=VALUE, got '%s'\n", argv[i]);
            return 2;
        }
        memcpy(key, argv[i], (size_t)(eq - argv[i]));
        key[eq - argv[i]] = '\0';
        rp_errbuf eb = {0};
        if (rp_config_set(&cfg, key, eq + 1, &eb) != RP_OK) {
            fprintf(stderr, "gen_config: %s\n", rp_errbuf_msg(&eb));
            return 2;
        }
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        perror(tmp);
        return 1;
    }
    rp_config_write_example(&cfg, put_line, f);
    if (ferror(f) | fclose(f) || rename(tmp, argv[1]) != 0) {
        perror(argv[1]);
        remove(tmp);
        return 1;
    }
    return 0;
}

/* replay_main.c — run a fuzz target over saved inputs, without libFuzzer.
 *
 * Linked with one fuzz_<name>.c into fuzz_replay_<name>, which the normal
 * test suite runs over tests/fuzz/<name>/ (seed-* and regress-* files):
 * every input a fuzzer once found interesting, or that once crashed a
 * target, is fed to LLVMFuzzerTestOneInput again on every build, with the
 * target's invariant checks. A failed check aborts, which fails the test.
 *
 * Usage: fuzz_replay_<name> PATH...  Each PATH is a file or a directory
 * (its regular files, not recursive, in name order so a failure is
 * reproducible). Files whose name starts with '.' are skipped. Exits 0
 * when every input ran, 1 on a usage or I/O error or when no input was
 * found at all (an empty corpus is a packaging mistake, not a pass).
 *
 * Each input is copied into a malloc'd block of exactly its size, as
 * libFuzzer does, so a read past the end is caught by ASan in the
 * sanitizer build. Limits: an input is read whole into memory.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read the whole file at path into a malloc'd block of its exact size (a
 * 1-byte block for an empty file, with *n = 0). Returns NULL on error,
 * after printing why. */
static uint8_t *replay_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "replay: cannot stat %s: %s\n", path, strerror(errno));
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        fprintf(stderr, "replay: out of memory reading %s (%zu bytes)\n", path, size);
        goto fail;
    }
    if (size && fread(buf, 1, size, f) != size) {
        fprintf(stderr, "replay: short read on %s\n", path);
        goto fail;
    }
    fclose(f);
    *n = size;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Run the target on one file. Returns 0, or -1 when it could not be read. */
static int replay_file(const char *path) {
    size_t n = 0;
    uint8_t *buf = replay_read(path, &n);
    if (buf == NULL) return -1;
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int replay_name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run the target on every regular file of dir, in name order; *count is
 * increased per file. Returns 0 or -1 on an error. */
static int replay_dir(const char *dir, unsigned *count) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (nn == NULL) goto oom;
            names = nn;
            cap = nc;
        }
        size_t dl = strlen(dir), fl = strlen(de->d_name);
        if ((names[n] = malloc(dl + 1 + fl + 1)) == NULL) goto oom;
        memcpy(names[n], dir, dl);
        names[n][dl] = '/';
        memcpy(names[n] + dl + 1, de->d_name, fl + 1);
        n++;
    }
    if (n) qsort(names, n, sizeof *names, replay_name_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (replay_file(names[i]) != 0) rc = -1;
        else (*count)++;
    }
    goto done;
oom:
    fprintf(stderr, "replay: out of memory listing %s\n", dir);
    rc = -1;
done:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 1;
    }
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc;
        if (S_ISDIR(st.st_mode)) {
            rc = replay_dir(argv[i], &count);
        } else {
            rc = replay_file(argv[i]);
            count += rc == 0;
        }
        if (rc != 0) return 1;
    }
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %u inputs ran cleanly\n", count);
    return 0;
}

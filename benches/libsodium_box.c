// libsodium's side of benches/curve.rs: crypto_box_afternm then crypto_box_open_afternm (what
// libzmq's CURVE does per MESSAGE, plus its 32-byte zero padding) on 17 B, 1 KiB + 1 and
// 1 MiB + 1 (a MESSAGE's flags byte and body), median of 7 timed loops each.
//
// Build against the libsodium pyzmq bundles (no headers needed):
//   LIBS=$(echo .venv/lib/python3*/site-packages/pyzmq.libs)
//   cc -O2 benches/libsodium_box.c -o /tmp/libsodium_box $LIBS/libsodium-*.so* -Wl,-rpath,$LIBS
//   /tmp/libsodium_box
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int sodium_init(void);
int crypto_box_keypair(unsigned char *pk, unsigned char *sk);
int crypto_box_beforenm(unsigned char *k, const unsigned char *pk, const unsigned char *sk);
int crypto_box_afternm(unsigned char *c, const unsigned char *m, unsigned long long mlen,
                       const unsigned char *n, const unsigned char *k);
int crypto_box_open_afternm(unsigned char *m, const unsigned char *c, unsigned long long clen,
                            const unsigned char *n, const unsigned char *k);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    unsigned char pk[32], sk[32], k[32], n[24] = {0};
    crypto_box_keypair(pk, sk);
    crypto_box_beforenm(k, pk, sk);
    const size_t sizes[] = {17, 1025, (1 << 20) + 1};
    const long iterations[] = {500000, 100000, 100};
    for (int s = 0; s < 3; s++) {
        size_t len = sizes[s] + 32; /* NaCl's 32 zero bytes in front */
        unsigned char *m = calloc(len, 1), *c = calloc(len, 1), *o = calloc(len, 1);
        double runs[7];
        for (int r = 0; r < 7; r++) {
            double start = now();
            for (long i = 0; i < iterations[s]; i++) {
                n[23] = (unsigned char)i;
                crypto_box_afternm(c, m, len, n, k);
                if (crypto_box_open_afternm(o, c, len, n, k) != 0) return 2;
            }
            runs[r] = (now() - start) / iterations[s] * 1e9;
        }
        qsort(runs, 7, sizeof runs[0], cmp);
        printf("libsodium seal+open %zu B: %.0f ns (median of 7)\n", sizes[s] - 1, runs[3]);
        free(m), free(c), free(o);
    }
    return 0;
}

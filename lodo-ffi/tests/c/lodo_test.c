/* The C ABI from C: minimise an ill-conditioned quadratic with f32 and f64 handles, save and
 * resume through a byte buffer (the resumed run must match the uninterrupted one bit for bit),
 * the same with a compact state (q8 or bf16 moments, bf16 activations; θ in f32 below an f64
 * handle), and check that bad input is a status code. `.ci/ffi` builds it against liblodo.a and
 * liblodo.so; it prints "N passed, M failed" and exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lodo.h"

static int passed = 0, failed = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) {                                                                  \
      passed++;                                                                  \
    } else {                                                                     \
      failed++;                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                            \
  } while (0)

#define CHECK_STATUS(expr, want)                                                 \
  do {                                                                           \
    LodoStatus got_ = (expr);                                                    \
    if (got_ == (want)) {                                                        \
      passed++;                                                                  \
    } else {                                                                     \
      failed++;                                                                  \
      fprintf(stderr, "%s:%d: %s gave %d (%s), expected %d\n", __FILE__, __LINE__, \
              #expr, (int)got_, lodo_status_message(got_), (int)(want));         \
    }                                                                            \
  } while (0)

enum { N = 16 };

/* ½ Σ dᵢ (xᵢ − cᵢ)², dᵢ = 1/(1+i)², cᵢ = 1 + i/8. */
static float grad_f32(const float *x, float *g) {
  float loss = 0.0f;
  for (int i = 0; i < N; i++) {
    float s = 1.0f + (float)i, d = 1.0f / (s * s), r = x[i] - (1.0f + (float)i / 8.0f);
    g[i] = d * r;
    loss += 0.5f * d * r * r;
  }
  return loss;
}

static double grad_f64(const double *x, double *g) {
  double loss = 0.0;
  for (int i = 0; i < N; i++) {
    double s = 1.0 + i, d = 1.0 / (s * s), r = x[i] - (1.0 + i / 8.0);
    g[i] = d * r;
    loss += 0.5 * d * r * r;
  }
  return loss;
}

static void run_f32(LodoF32 *h, float *x, int steps) {
  float g[N];
  for (int t = 0; t < steps; t++) {
    grad_f32(x, g);
    CHECK_STATUS(lodo_f32_step(h, x, g, N), LODO_OK);
  }
}

static void run_f64(LodoF64 *h, double *x, int steps) {
  double g[N];
  for (int t = 0; t < steps; t++) {
    grad_f64(x, g);
    CHECK_STATUS(lodo_f64_step(h, x, g, N), LODO_OK);
  }
}

static void test_f32_save_resume(void) {
  LodoConfigC config = lodo_config_default();
  config.alpha0 = 0.5;
  LodoStatus status = -1;
  LodoF32 *h = lodo_f32_new(N, &config, 2023, &status);
  CHECK_STATUS(status, LODO_OK);
  CHECK(h != NULL);
  size_t dim = 0;
  CHECK_STATUS(lodo_f32_dim(h, &dim), LODO_OK);
  CHECK(dim == N);

  float x[N] = {0}, g[N];
  float loss0 = grad_f32(x, g);
  run_f32(h, x, 100);

  size_t size = 0, written = 0;
  CHECK_STATUS(lodo_f32_state_size(h, &size), LODO_OK);
  unsigned char *buf = malloc(size);
  CHECK_STATUS(lodo_f32_save(h, buf, size - 1, &written), LODO_ERR_BUFFER_TOO_SMALL);
  CHECK(written == size);
  CHECK_STATUS(lodo_f32_save(h, buf, size, &written), LODO_OK);
  float y[N];
  memcpy(y, x, sizeof x);

  run_f32(h, x, 200);
  LodoF32 *resumed = lodo_f32_load(buf, size, &status);
  CHECK_STATUS(status, LODO_OK);
  run_f32(resumed, y, 200);
  CHECK(memcmp(x, y, sizeof x) == 0); /* bit for bit */
  float loss = grad_f32(x, g);
  printf("f32: loss %g -> %g after 300 steps; resumed run bit-identical: %s\n", loss0, loss,
         memcmp(x, y, sizeof x) == 0 ? "yes" : "NO");
  CHECK(loss < 1e-3f * loss0);

  /* Truncated, corrupted and foreign state bytes. */
  CHECK(lodo_f32_load(buf, size - 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_STATE_TRUNCATED);
  buf[size / 2] ^= 0x10;
  CHECK(lodo_f32_load(buf, size, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_STATE_CORRUPT);
  buf[size / 2] ^= 0x10;
  CHECK(lodo_f64_load(buf, size, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_STATE_WRONG_TYPE);
  CHECK(lodo_f32_load(NULL, size, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_NULL_POINTER);

  free(buf);
  lodo_f32_free(h);
  lodo_f32_free(resumed);
}

static void test_f64_save_resume(void) {
  LodoConfigC config = lodo_config_default();
  config.alpha0 = 0.5;
  LodoStatus status = -1;
  LodoF64 *h = lodo_f64_new(N, &config, 7, &status);
  CHECK_STATUS(status, LODO_OK);
  double x[N] = {0}, y[N], g[N];
  double loss0 = grad_f64(x, g);
  run_f64(h, x, 100);
  size_t size = 0;
  CHECK_STATUS(lodo_f64_state_size(h, &size), LODO_OK);
  unsigned char *buf = malloc(size);
  CHECK_STATUS(lodo_f64_save(h, buf, size, NULL), LODO_OK);
  memcpy(y, x, sizeof x);
  run_f64(h, x, 200);
  LodoF64 *resumed = lodo_f64_load(buf, size, &status);
  CHECK_STATUS(status, LODO_OK);
  run_f64(resumed, y, 200);
  CHECK(memcmp(x, y, sizeof x) == 0);
  double loss = grad_f64(x, g);
  printf("f64: loss %g -> %g after 300 steps; resumed run bit-identical: %s\n", loss0, loss,
         memcmp(x, y, sizeof x) == 0 ? "yes" : "NO");
  CHECK(loss < 1e-3 * loss0);
  free(buf);
  lodo_f64_free(h);
  lodo_f64_free(resumed);
}

/* A compact state: q8 (f32) or bf16 (f64) moments and bf16 activations train, save compact,
 * and resume bit for bit; the memory query follows the policy; refused policies are statuses. */
static void test_compact_state(void) {
  LodoConfigC full = lodo_config_default();
  full.alpha0 = 0.5;
  CHECK(full.moments == LODO_PRECISION_FULL && full.activations == LODO_PRECISION_FULL);
  LodoConfigC config = full;
  config.moments = LODO_PRECISION_Q8;
  config.activations = LODO_PRECISION_BF16;
  LodoStatus status = -1;
  LodoF32 *h = lodo_f32_new(N, &config, 2023, &status);
  CHECK_STATUS(status, LODO_OK);
  LodoF32 *plain = lodo_f32_new(N, &full, 2023, &status);
  CHECK_STATUS(status, LODO_OK);

  float x[N] = {0}, y[N], g[N];
  float loss0 = grad_f32(x, g);
  run_f32(h, x, 100);
  size_t size = 0, plain_size = 0;
  CHECK_STATUS(lodo_f32_state_size(h, &size), LODO_OK);
  CHECK_STATUS(lodo_f32_state_size(plain, &plain_size), LODO_OK);
  CHECK(size < plain_size); /* q8 moments: 1 byte each instead of 4 */
  unsigned char *buf = malloc(size);
  CHECK_STATUS(lodo_f32_save(h, buf, size, NULL), LODO_OK);
  memcpy(y, x, sizeof x);
  run_f32(h, x, 200);
  LodoF32 *resumed = lodo_f32_load(buf, size, &status);
  CHECK_STATUS(status, LODO_OK);
  run_f32(resumed, y, 200);
  CHECK(memcmp(x, y, sizeof x) == 0);
  float loss = grad_f32(x, g);
  printf("f32, q8 moments + bf16 activations: loss %g -> %g after 300 steps; state %zu bytes "
         "(full %zu); resumed run bit-identical: %s\n",
         loss0, loss, size, plain_size, memcmp(x, y, sizeof x) == 0 ? "yes" : "NO");
  CHECK(loss < 1e-2f * loss0);
  free(buf);

  size_t bytes = 0, full_bytes = 0;
  CHECK_STATUS(lodo_f32_memory_size(1000, &config, &bytes), LODO_OK);
  CHECK_STATUS(lodo_f32_memory_size(1000, &full, &full_bytes), LODO_OK);
  CHECK(10 * bytes < 6 * full_bytes); /* ≈ 1.2 KB instead of 2.1 KB per parameter */

  /* f64 with bf16 moments. */
  config.moments = LODO_PRECISION_BF16;
  LodoF64 *h64 = lodo_f64_new(N, &config, 7, &status);
  CHECK_STATUS(status, LODO_OK);
  double a[N] = {0}, b[N];
  run_f64(h64, a, 60);
  CHECK_STATUS(lodo_f64_state_size(h64, &size), LODO_OK);
  buf = malloc(size);
  CHECK_STATUS(lodo_f64_save(h64, buf, size, NULL), LODO_OK);
  memcpy(b, a, sizeof a);
  run_f64(h64, a, 100);
  LodoF64 *resumed64 = lodo_f64_load(buf, size, &status);
  CHECK_STATUS(status, LODO_OK);
  run_f64(resumed64, b, 100);
  CHECK(memcmp(a, b, sizeof a) == 0);
  free(buf);

  /* Refused policies. */
  config = full;
  config.activations = LODO_PRECISION_Q8;
  CHECK(lodo_f32_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION);
  CHECK_STATUS(lodo_f64_memory_size(N, &config, &bytes), LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION);
  config = full;
  config.moments = LODO_PRECISION_Q8;
  config.block_size = 23;
  CHECK(lodo_f64_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_COMPACT_BLOCK_TOO_LARGE);
  config.moments = 3; /* no such policy */
  CHECK(lodo_f32_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_INVALID_CONFIG);
  CHECK(strcmp(lodo_status_message(LODO_ERR_COMPACT_BLOCK_TOO_LARGE), "unknown status code") != 0);
  CHECK(strcmp(lodo_status_message(LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION),
               "unknown status code") != 0);

  lodo_f32_free(h);
  lodo_f32_free(plain);
  lodo_f32_free(resumed);
  lodo_f64_free(h64);
  lodo_f64_free(resumed64);
}

/* θ in f32 below an f64 handle (with q8 moments and bf16 activations): trains, saves θ as f32
 * (a smaller state), resumes bit for bit, needs less memory; an f32 handle refuses it. */
static void test_f32_weights(void) {
  LodoConfigC wide = lodo_config_default();
  wide.alpha0 = 0.5;
  wide.moments = LODO_PRECISION_Q8;
  wide.activations = LODO_PRECISION_BF16;
  CHECK(wide.weights == LODO_WEIGHTS_FULL);
  LodoConfigC config = wide;
  config.weights = LODO_WEIGHTS_F32;
  LodoStatus status = -1;
  LodoF64 *h = lodo_f64_new(N, &config, 2023, &status);
  CHECK_STATUS(status, LODO_OK);
  LodoF64 *plain = lodo_f64_new(N, &wide, 2023, &status);
  CHECK_STATUS(status, LODO_OK);

  double x[N] = {0}, y[N], g[N];
  double loss0 = grad_f64(x, g);
  run_f64(h, x, 100);
  size_t size = 0, wide_size = 0;
  CHECK_STATUS(lodo_f64_state_size(h, &size), LODO_OK);
  CHECK_STATUS(lodo_f64_state_size(plain, &wide_size), LODO_OK);
  CHECK(size < wide_size); /* θ saved as f32: 4 bytes a weight instead of 8 */
  unsigned char *buf = malloc(size);
  CHECK_STATUS(lodo_f64_save(h, buf, size, NULL), LODO_OK);
  memcpy(y, x, sizeof x);
  run_f64(h, x, 200);
  LodoF64 *resumed = lodo_f64_load(buf, size, &status);
  CHECK_STATUS(status, LODO_OK);
  run_f64(resumed, y, 200);
  CHECK(memcmp(x, y, sizeof x) == 0);
  double loss = grad_f64(x, g);
  printf("f64, theta in f32 + q8 moments + bf16 activations: loss %g -> %g after 300 steps; "
         "state %zu bytes (theta in f64: %zu); resumed run bit-identical: %s\n",
         loss0, loss, size, wide_size, memcmp(x, y, sizeof x) == 0 ? "yes" : "NO");
  CHECK(loss < 1e-2 * loss0);
  free(buf);

  size_t bytes = 0, wide_bytes = 0;
  CHECK_STATUS(lodo_f64_memory_size(1000, &config, &bytes), LODO_OK);
  CHECK_STATUS(lodo_f64_memory_size(1000, &wide, &wide_bytes), LODO_OK);
  CHECK(bytes < wide_bytes);

  /* Refused: θ in f32 with an f32 handle; a value that names no policy. */
  CHECK(lodo_f32_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION);
  CHECK_STATUS(lodo_f32_memory_size(N, &config, &bytes), LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION);
  config.weights = 2;
  CHECK(lodo_f64_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_INVALID_CONFIG);
  CHECK(strcmp(lodo_status_message(LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION),
               "unknown status code") != 0);

  lodo_f64_free(h);
  lodo_f64_free(plain);
  lodo_f64_free(resumed);
}

static void test_bad_input(void) {
  LodoConfigC config = lodo_config_default();
  LodoStatus status = -1;
  CHECK(lodo_f32_new(N, NULL, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_NULL_POINTER);
  CHECK(lodo_f32_new(0, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_INVALID_CONFIG);
  config.beta = 1.5;
  CHECK(lodo_f32_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_INVALID_CONFIG);
  config = lodo_config_default();
  config.hidden = 6; /* < n */
  CHECK(lodo_f64_new(N, &config, 1, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_INVALID_CONFIG);
  config = lodo_config_default();

  LodoF32 *h = lodo_f32_new(N, &config, 1, NULL);
  CHECK(h != NULL);
  float x[N + 1] = {0}, g[N + 1] = {0};
  CHECK_STATUS(lodo_f32_step(NULL, x, g, N), LODO_ERR_NULL_POINTER);
  CHECK_STATUS(lodo_f32_step(h, NULL, g, N), LODO_ERR_NULL_POINTER);
  CHECK_STATUS(lodo_f32_step(h, x, NULL, N), LODO_ERR_NULL_POINTER);
  CHECK_STATUS(lodo_f32_step(h, x, g, N - 1), LODO_ERR_WRONG_LENGTH);
  CHECK_STATUS(lodo_f32_step(h, x, g, N + 1), LODO_ERR_WRONG_LENGTH);
  CHECK_STATUS(lodo_f32_step(h, x, x, N), LODO_ERR_ALIASING);
  CHECK_STATUS(lodo_f32_step(h, (float *)((char *)x + 1), g, N), LODO_ERR_MISALIGNED_POINTER);
  g[5] = NAN;
  CHECK_STATUS(lodo_f32_step(h, x, g, N), LODO_ERR_NON_FINITE_GRADIENT);
  g[5] = INFINITY;
  CHECK_STATUS(lodo_f32_step(h, x, g, N), LODO_ERR_NON_FINITE_GRADIENT);
  for (int i = 0; i < N; i++) CHECK(x[i] == 0.0f); /* nothing changed */

  size_t bytes = 0;
  CHECK_STATUS(lodo_f32_memory_size(N, &config, &bytes), LODO_OK);
  CHECK(bytes > 0);
  size_t bytes64 = 0;
  CHECK_STATUS(lodo_f64_memory_size(N, &config, &bytes64), LODO_OK);
  CHECK(bytes64 > bytes);
  unsigned char junk[64];
  for (int i = 0; i < 64; i++) junk[i] = (unsigned char)(i * 37 + 11);
  CHECK(lodo_f32_load(junk, sizeof junk, &status) == NULL);
  CHECK_STATUS(status, LODO_ERR_STATE_CORRUPT);
  CHECK(strcmp(lodo_status_message(LODO_OK), "success") == 0);
  CHECK(strcmp(lodo_status_message(12345), "unknown status code") == 0);
  lodo_f32_free(h);
  lodo_f32_free(NULL);
  lodo_f64_free(NULL);
}

int main(void) {
  test_f32_save_resume();
  test_f64_save_resume();
  test_compact_state();
  test_f32_weights();
  test_bad_input();
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

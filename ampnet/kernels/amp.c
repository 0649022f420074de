/* Block-by-block inference kernels for ampnet's WaveNet, LSTM, GRU, S4D, gray box and TCN (and the
 * GRU's training recurrence).
 *
 * Compiled on the user's machine on first use (see kernels/__init__.py) and called
 * through ctypes, one call per block. Nothing is allocated after *_create: every
 * buffer is sized for max_block samples up front, so the per-block path is
 * real-time safe.
 *
 * WaveNet weights use NAM's flat order (0.7 schema; the classic one is part of it): per
 * layer array the re-channel, then per layer the dilated conv (weight, bias), the input
 * mixer, the layer1x1 and head1x1 (weight, bias) when active and each active FiLM, then
 * the head re-channel (weight[, bias]); the top-level head's convolutions; head_scale
 * last. Grouped convolutions are expanded to dense ones at load. The plain A1/A2 layer
 * runs fused (conv and mixer in one product, A2-Lite's small layers in registers); a
 * layer with any 0.6/0.7 feature (blended gates, FiLM, head1x1, per-layer or parametric
 * activations...) runs rich_layer, one pass per step in WaveNetLayer.forward's order.
 * Each dilated conv keeps its input history in a linear buffer that is rewound
 * (its last `history` samples copied to the front) only when the write position
 * reaches the end, so a block costs only its own samples.
 *
 * Signals are planar: channel c of a block of n samples is x[c * stride + t].
 * Every matrix product runs as `dense`: TILE samples at a time, RB output rows
 * held in vector registers while the inputs stream past (GCC/clang vector
 * extensions: AVX-512, AVX2 or NEON code from the same source).
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime (time_blocks) under -std=c99 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TILE: samples per vector register, as wide as the machine's vectors. */
#if defined(__AVX512F__)
#define TILE 16
#elif defined(__AVX__)
#define TILE 8
#else
#define TILE 4
#endif
#if defined(__SSE__) || defined(__AVX__)
#include <immintrin.h>
#endif
#define RB 8 /* output rows per register block */
#define INLINE static inline __attribute__((always_inline))
typedef float vec __attribute__((vector_size(TILE * sizeof(float))));

INLINE vec vload(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void vstore(float *p, vec v) { memcpy(p, &v, sizeof v); }
static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* The activations the kernel implements. Python asks activation_id() for the number of
 * a NAM activation name, so this table is the only list of them. */
enum { ACT_TANH, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_SILU, ACT_HARDTANH, ACT_SOFTSIGN, ACT_HARDSWISH,
       ACT_PRELU, ACT_LEAKY_HARDTANH, N_ACT };
static const char *const ACTIVATION_NAMES[N_ACT] = {
    [ACT_TANH] = "Tanh",         [ACT_RELU] = "ReLU",         [ACT_LEAKY_RELU] = "LeakyReLU",
    [ACT_SIGMOID] = "Sigmoid",   [ACT_SILU] = "SiLU",         [ACT_HARDTANH] = "Hardtanh",
    [ACT_SOFTSIGN] = "Softsign", [ACT_HARDSWISH] = "Hardswish", [ACT_PRELU] = "PReLU",
    [ACT_LEAKY_HARDTANH] = "LeakyHardtanh",
};
/* Parameters an activation of a layer reads (act_params in wavenet_create): LeakyReLU's
 * slope, PReLU's slope for each channel, LeakyHardtanh's min_val, max_val, min_slope,
 * max_slope; ACT_PARAMS + bottleneck floats each. The fixed-function paths (activation(),
 * no parameters) run LeakyReLU at NAM's default 0.01 and never PReLU or LeakyHardtanh. */
#define ACT_PARAMS 4

/* The id of an activation by its NAM name, or -1 when the kernel does not implement it. */
int activation_id(const char *name) {
    for (int i = 0; i < N_ACT; i++)
        if (strcmp(name, ACTIVATION_NAMES[i]) == 0) return i;
    return -1;
}

typedef int32_t ivec __attribute__((vector_size(TILE * sizeof(int32_t))));

INLINE vec vselect(ivec mask, vec a, vec b) { return (vec)((mask & (ivec)a) | (~mask & (ivec)b)); }

INLINE vec vmax(vec a, vec b) {
#if defined(__AVX512F__)
    return (vec)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (vec)_mm256_max_ps((__m256)a, (__m256)b);
#elif defined(__SSE__)
    return (vec)_mm_max_ps((__m128)a, (__m128)b);
#else
    return vselect(a > b, a, b);
#endif
}

/* exp(x) - 1 and exp(x) for x <= 0, TILE lanes at once: range reduction x = n ln2 + r with
 * r in [-ln2/2, ln2/2], q = exp(r) - 1 by a degree-7 Taylor polynomial (relative error below
 * 1e-7; evaluated in Estrin's scheme, whose multiply-adds do not all wait on each other, so
 * the recurrent LSTM waits less), then exp(x) - 1 = s q + (s - 1) with s = 2^n: no
 * cancellation for small x, so tanh needs no separate series near zero. */
INLINE vec vexpm1_nonpos(vec x, vec *e) {
    x = vmax(x, (vec){0} - 87.0f);
    const vec nm = x * 1.44269504088896341f + 12582912.0f; /* adding 1.5 * 2^23 rounds to an integer */
    const vec n = nm - 12582912.0f;
    vec r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    const vec r2 = r * r, r4 = r2 * r2;
    const vec a01 = 1.0f + r * 0.5f, a23 = 1.0f / 6 + r * (1.0f / 24), a45 = 1.0f / 120 + r * (1.0f / 720);
    const vec p = (a01 + r2 * a23) + r4 * (a45 + r2 * (1.0f / 5040));
    const vec q = p * r;
    /* nm's low mantissa bits hold n (two's complement): shifted into the exponent, that is 2^n */
    const vec s = (vec)(((ivec)nm << 23) + (127 << 23));
    if (e) *e = s * q + s;
    return s * q + (s - 1.0f);
}

/* tanh(x) as a quotient num / den: num = -m with x's sign, den = 2 + m, m = exp(-2|x|) - 1.
 * den lies in [1, 2], so callers may multiply quotients' parts before one division. */
INLINE void vtanh_q(vec x, vec *num, vec *den) {
    const ivec sign = (ivec)x & (int32_t)0x80000000;
    const vec a = (vec)((ivec)x & 0x7fffffff);
    const vec m = vexpm1_nonpos(a * -2.0f, NULL);
    *num = (vec)((ivec)-m | sign);
    *den = 2.0f + m;
}

/* sigmoid(x) as a quotient: 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|) in
 * (0, 1], so den lies in [1, 2]; no cancellation on either side. */
INLINE void vsigmoid_q(vec x, vec *num, vec *den) {
    const vec na = (vec)((ivec)x | (int32_t)0x80000000); /* -|x| */
    vec e;
    vexpm1_nonpos(na, &e);
    *num = vselect(x < 0.0f, e, (vec){0} + 1.0f);
    *den = 1.0f + e;
}

/* tanh within 3.3 ulp of the exact value everywhere (the series-and-exp form before was
 * within 4.5) and sigmoid within 3.6 ulp, each with one division: a true division is
 * faster here than a reciprocal estimate and its Newton steps. */
INLINE vec vtanh(vec x) {
    vec num, den;
    vtanh_q(x, &num, &den);
    return num / den;
}

INLINE vec vsigmoid(vec x) {
    vec num, den;
    vsigmoid_q(x, &num, &den);
    return num / den;
}

INLINE vec activation(int kind, vec v) {
    const vec zero = {0};
    switch (kind) {
    case ACT_TANH: return vtanh(v);
    case ACT_RELU: return vselect(v > zero, v, zero);
    case ACT_LEAKY_RELU: return vselect(v > zero, v, 0.01f * v);
    case ACT_SIGMOID: return vsigmoid(v);
    case ACT_SILU: return v * vsigmoid(v);
    case ACT_HARDTANH: return vselect(v > 1.0f, zero + 1.0f, vselect(v < -1.0f, zero - 1.0f, v));
    case ACT_SOFTSIGN: return v / (1.0f + (vec)((ivec)v & 0x7fffffff));
    case ACT_HARDSWISH: {
        vec u = v + 3.0f;
        u = vselect(u < zero, zero, vselect(u > 6.0f, zero + 6.0f, u));
        return v * u / 6.0f;
    }
    default: return v;
    }
}

/* activation() with its parameters p, for row `row` of its input (PReLU's channel). */
INLINE vec activation_p(int kind, vec v, const float *p, int row) {
    const vec zero = {0};
    switch (kind) {
    case ACT_LEAKY_RELU: return vselect(v > zero, v, p[0] * v);
    case ACT_PRELU: return vselect(v > zero, v, p[row] * v);
    case ACT_LEAKY_HARDTANH: {
        const vec low = (v - p[0]) * p[2] + p[0], high = (v - p[1]) * p[3] + p[1];
        return vselect(v < p[0], low, vselect(v > p[1], high, v));
    }
    default: return activation(kind, v);
    }
}

/* h = act(z_a) (times sigmoid(z_b) when gated), and head += h: n samples, a multiple of TILE. */
static void activate(int kind, const float *za, const float *zb, float *h, float *head, int n) {
    for (int t = 0; t < n; t += TILE) {
        vec v = activation(kind, vload(za + t));
        if (zb) v *= vsigmoid(vload(zb + t));
        vstore(h + t, v);
        vstore(head + t, vload(head + t) + v);
    }
}

/* A weight matrix (rows x k, row-major) repacked for `dense`: for each block of RB
 * rows, k groups of RB weights (rows past the end are zero), and a zero-padded bias. */
typedef struct {
    int rows, k;
    float *w, *bias;
} Dense;

static int dense_init(Dense *d, const float *w, const float *bias, int rows, int k) {
    int blocks = (rows + RB - 1) / RB;
    d->rows = rows;
    d->k = k;
    d->w = calloc((size_t)blocks * k * RB, sizeof(float));
    d->bias = calloc((size_t)blocks * RB, sizeof(float));
    if (!d->w || !d->bias) return 0;
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < k; i++) d->w[((size_t)(r / RB) * k + i) * RB + r % RB] = w[(size_t)r * k + i];
        d->bias[r] = bias ? bias[r] : 0.0f;
    }
    return 1;
}

static void dense_free(Dense *d) {
    free(d->w);
    free(d->bias);
}

/* One register block of R <= RB output rows over T tiles: both are compile-time constants
 * in each instance, so a block of 3 rows (A2-Lite) does 3 multiply-adds per input, not RB,
 * and few rows take several tiles at once to keep the vector units busy. */
#define DENSE_ROWS(R, T)                                                                                \
    static inline void dense_rows_##R##_##T(const Dense *d, const float *w, const float *bias,          \
                                            const float *const *src, const float *init, int init_stride, \
                                            float *out, int out_stride, int t) {                        \
        vec acc[T][R];                                                                                  \
        for (int u = 0; u < T; u++)                                                                     \
            for (int r = 0; r < R; r++) acc[u][r] = (vec){0} + bias[r];                                 \
        if (init)                                                                                       \
            for (int u = 0; u < T; u++)                                                                 \
                for (int r = 0; r < R; r++) acc[u][r] += vload(init + (size_t)r * init_stride + t + u * TILE); \
        for (int i = 0; i < d->k; i++) {                                                                \
            const float *wi = w + (size_t)i * RB;                                                       \
            _Pragma("GCC unroll 4") for (int u = 0; u < T; u++) {                                       \
                const vec x = vload(src[i] + t + u * TILE);                                             \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[u][r] += x * wi[r];             \
            }                                                                                           \
        }                                                                                               \
        for (int u = 0; u < T; u++)                                                                     \
            for (int r = 0; r < R; r++) vstore(out + (size_t)r * out_stride + t + u * TILE, acc[u][r]); \
    }
DENSE_ROWS(1, 4)
DENSE_ROWS(2, 4)
DENSE_ROWS(3, 4)
DENSE_ROWS(4, 4)
DENSE_ROWS(5, 2)
DENSE_ROWS(6, 2)
DENSE_ROWS(7, 2)
DENSE_ROWS(8, 2)
DENSE_ROWS(1, 1)
DENSE_ROWS(2, 1)
DENSE_ROWS(3, 1)
DENSE_ROWS(4, 1)
DENSE_ROWS(5, 1)
DENSE_ROWS(6, 1)
DENSE_ROWS(7, 1)
DENSE_ROWS(8, 1)

/* out[r][t] = bias[r] (+ init[r][t]) + sum_i W[r][i] * src[i][t] for t < n (a multiple
 * of TILE); src is a list of k row pointers, so shifted views (conv taps) cost nothing. */
static void dense(const Dense *d, const float *const *src, const float *init, int init_stride, float *out,
                  int out_stride, int n) {
    for (int r0 = 0; r0 < d->rows; r0 += RB) {
        const float *w = d->w + (size_t)(r0 / RB) * d->k * RB, *bias = d->bias + r0;
        const float *in = init ? init + (size_t)r0 * init_stride : NULL;
        float *o = out + (size_t)r0 * out_stride;
        const int rows = d->rows - r0 < RB ? d->rows - r0 : RB;
        int t = 0;
#define WIDE(R, T)                                                                                      \
    for (; t + (T) * TILE <= n; t += (T) * TILE) dense_rows_##R##_##T(d, w, bias, src, in, init_stride, o, out_stride, t)
        switch (rows) { /* few rows: several tiles a pass, then one tile at a time */
        case 1: WIDE(1, 4); break;
        case 2: WIDE(2, 4); break;
        case 3: WIDE(3, 4); break;
        case 4: WIDE(4, 4); break;
        case 5: WIDE(5, 2); break;
        case 6: WIDE(6, 2); break;
        case 7: WIDE(7, 2); break;
        default: WIDE(8, 2); break;
        }
#undef WIDE
        for (; t < n; t += TILE) {
            switch (rows) {
            case 1: dense_rows_1_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 2: dense_rows_2_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 3: dense_rows_3_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 4: dense_rows_4_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 5: dense_rows_5_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 6: dense_rows_6_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            case 7: dense_rows_7_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            default: dense_rows_8_1(d, w, bias, src, in, init_stride, o, out_stride, t); break;
            }
        }
    }
}

/* NAM's FiLM places, in its weight order (ampnet/models/layer_array.py FILMS). */
enum { FILM_CONV_PRE, FILM_CONV_POST, FILM_MIX_PRE, FILM_MIX_POST, FILM_ACT_PRE, FILM_ACT_POST,
       FILM_L1X1_POST, FILM_H1X1_POST, N_FILM };

/* x * scale(c) (+ shift(c)): scale and shift the rows of one 1x1 convolution of the condition. */
typedef struct {
    int dim, shift;
    Dense d;
} Film;

typedef struct {
    int kernel, dilation, history, length, pos; /* buf: channels x length, next write at pos */
    float *buf;
    int *tap_off; /* tap c * kernel + j reads buf + pos + tap_off[...]: fixed, so set once */
    Dense conv;   /* [dilated conv taps | input mixer] -> mid with the conv bias; split: the taps only */
    Dense mixer;  /* split only: the input mixer, cond -> mid */
    Dense conv1x1; /* bottleneck -> channels, added to the layer input (residual) */
    Dense head1x1; /* bottleneck -> head_in, when active */
    Film film[N_FILM];
    int act, gating, sec, mid; /* this layer's own (rich arrays may vary them by layer) */
    const float *act_p, *sec_p; /* their parameters (ACT_PARAMS + bottleneck floats each) */
} Layer;

typedef struct {
    int input_size, cond_size, head_size, channels, bottleneck, gated, act, n_layers;
    int head_kernel, head_dilation;
    /* NAM 0.6/0.7 layer features. gating: 0 none, 1 gated, 2 blended, with the secondary
     * activation sec; head_in: the head sum's rows (head1x1's outputs, else bottleneck);
     * films: FiLM places on (bit i: place i); split: the conv and the input mixer run
     * apart (a FiLM between them); rich: any of these, run by rich_layer */
    int gating, sec, layer1x1, head1x1, head_in, films, split, rich;
    Layer *layers;
    Dense rechannel, head;
    /* the head sums, bottleneck x head_length with the last head_history samples kept for
     * the head convolution's taps; this block's sums start at head_pos */
    float *head_buf;
    int head_history, head_length, head_pos;
    float *out;      /* channels x block: the last layer's output */
    float *head_out; /* head_size x block */
} Array;

/* One convolution of the top-level head, fed its activated input through a history. */
typedef struct {
    int in, out, kernel, history, length, pos; /* buf: in x length, next write at pos */
    float *buf;
    Dense conv; /* out x in*kernel, with bias */
} PostConv;

typedef struct WaveNet {
    int n_arrays, max_block, block, cond_size; /* block: max_block rounded up to TILE */
    long prewarm; /* samples of silence that settle every history: receptive field - 1 */
    Array *arrays;
    float *z, *h;    /* scratch rows x block */
    float *xr, *cf, *mx, *tmp, *ss; /* rich layers' scratch, rows x block each */
    const float **csrc; /* the condition's row pointers, for FiLMs */
    float *act_params;  /* every layer's activation parameters, owned */
    float *cond;     /* the input, copied and zero-padded to whole tiles */
    float *silence;  /* zeros, for prewarming */
    float *sink;     /* discarded prewarm output */
    const float **src; /* row pointers for dense */
    float head_scale;
    int out_rows; /* rows of the output: 1 for a model, the condition's for a condition_dsp */
    /* NAM's top-level head: (activation, causal conv) n_post times on head_scale * head */
    int n_post, post_act;
    const float *post_p; /* its activation's parameters */
    PostConv *post;
    float *post_out; /* the last conv's output rows x block */
    /* a condition_dsp: a WaveNet on the input whose output is the condition (owned) */
    struct WaveNet *dsp;
    int in_size;  /* input rows: cond_size, or the condition_dsp's input rows */
    float *raw;   /* the input, copied and zero-padded: cond itself without a condition_dsp */
} WaveNet;

static void wavenet_free(WaveNet *m) {
    if (!m) return;
    if (m->arrays) {
        for (int a = 0; a < m->n_arrays; a++) {
            Array *A = &m->arrays[a];
            if (A->layers)
                for (int l = 0; l < A->n_layers; l++) {
                    free(A->layers[l].buf);
                    free(A->layers[l].tap_off);
                    dense_free(&A->layers[l].conv);
                    dense_free(&A->layers[l].conv1x1);
                    dense_free(&A->layers[l].mixer);
                    dense_free(&A->layers[l].head1x1);
                    for (int f = 0; f < N_FILM; f++) dense_free(&A->layers[l].film[f].d);
                }
            free(A->layers);
            dense_free(&A->rechannel);
            dense_free(&A->head);
            free(A->head_buf);
            free(A->out);
            free(A->head_out);
        }
    }
    free(m->arrays);
    free(m->z);
    free(m->h);
    free(m->xr);
    free(m->cf);
    free(m->mx);
    free(m->tmp);
    free(m->ss);
    free(m->csrc);
    free(m->act_params);
    free(m->silence);
    free(m->sink);
    free(m->src);
    if (m->post)
        for (int i = 0; i < m->n_post; i++) {
            free(m->post[i].buf);
            dense_free(&m->post[i].conv);
        }
    free(m->post);
    free(m->post_out);
    if (m->raw != m->cond) free(m->raw);
    free(m->cond);
    wavenet_free(m->dsp);
    free(m);
}

void wavenet_destroy(void *handle) { wavenet_free((WaveNet *)handle); }

static void wavenet_block(WaveNet *m, const float *in, int in_stride, float *out, int out_stride, int n);

/* A history buffer of `history` past samples and room for two blocks of new ones. */
static int buffer_length(int history, int block) { return history + (history > 2 * block ? history : 2 * block); }

/* Back to "silence before the first sample": every history holds what it holds while the
 * input is silent. Layers have biases, so that is not zero; it is reached by running
 * receptive_field - 1 samples of silence from zeroed buffers. */
void wavenet_reset(void *handle) {
    WaveNet *m = (WaveNet *)handle;
    for (int a = 0; a < m->n_arrays; a++) {
        Array *A = &m->arrays[a];
        for (int l = 0; l < A->n_layers; l++) {
            Layer *L = &A->layers[l];
            memset(L->buf, 0, sizeof(float) * (size_t)A->channels * L->length);
            L->pos = L->history;
        }
        memset(A->head_buf, 0, sizeof(float) * (size_t)A->head_in * A->head_length);
        A->head_pos = A->head_history;
    }
    for (int i = 0; i < m->n_post; i++) {
        PostConv *P = &m->post[i];
        memset(P->buf, 0, sizeof(float) * (size_t)P->in * P->length);
        P->pos = P->history;
    }
    /* a condition_dsp settles on its own first; silence then keeps it where it is */
    if (m->dsp) wavenet_reset(m->dsp);
    for (long done = 0; done < m->prewarm; done += m->max_block) {
        int len = m->prewarm - done < m->max_block ? (int)(m->prewarm - done) : m->max_block;
        wavenet_block(m, m->silence, m->block, m->sink, 0, len);
    }
}

/* A grouped convolution's weights (out x in/groups x k, PyTorch's layout) as one dense
 * out x in*k matrix, zero between the groups. 0 when the sizes do not divide. */
static int ungroup(const float *w, int out, int in, int k, int groups, float *dst) {
    if (groups < 1 || out % groups || in % groups) return 0;
    const int gin = in / groups, gout = out / groups;
    memset(dst, 0, sizeof(float) * (size_t)out * in * k);
    for (int r = 0; r < out; r++)
        for (int i = 0; i < gin; i++)
            memcpy(dst + (size_t)r * in * k + (size_t)(r / gout * gin + i) * k, w + ((size_t)r * gin + i) * k,
                   sizeof(float) * k);
    return 1;
}

/* Reads a grouped convolution (weights, then a bias of `out` when has_bias) at *w into d;
 * 0 when the weights run out, the sizes do not divide or memory does. */
static int read_conv(Dense *d, const float *weights, long n_weights, long *w, int out, int in, int k, int groups,
                     int has_bias) {
    if (groups < 1 || in % groups) return 0;
    long need = (long)out * (in / groups) * k + (has_bias ? out : 0);
    if (*w + need > n_weights) return 0;
    float *full = malloc(sizeof(float) * (size_t)out * in * k);
    int ok = full && ungroup(weights + *w, out, in, k, groups, full) &&
             dense_init(d, full, has_bias ? weights + *w + need - out : NULL, out, in * k);
    free(full);
    *w += need;
    return ok;
}

/* config: n_arrays, then per array: input_size, condition_size, head_size, channels,
 * bottleneck, gating (0 none, 1 gated, 2 blended), head_bias, activation, head_kernel,
 * head_dilation, n_layers, secondary activation (-1: Sigmoid), layer1x1 active, its
 * groups, head1x1 outputs (0: none), its groups, groups_input, groups_input_mixin, then
 * per FiLM place its groups (0: off) and shift, then per layer its kernel size, dilation,
 * activation, gating and secondary activation (the array's gating, activation and
 * secondary are its first layer's). Weights in NAM's order (wavenet_tensors in
 * ampnet/formats/nam_weights.py); act_params: per layer the parameters of its activation,
 * then of its secondary (ACT_PARAMS + bottleneck floats each). Returns NULL when config,
 * weights and parameters do not agree. */
#define ARRAY_FIELDS (18 + 2 * N_FILM)
void *wavenet_create(const int *config, int config_len, const float *weights, long n_weights,
                     const float *act_params, long n_act_params, int max_block) {
    if (config_len < 1 || max_block < 1 || config[0] < 1) return NULL;
    float *combined = NULL, *conv_full = NULL, *mix_full = NULL; /* one layer's [conv | mixer] weights */
    WaveNet *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n_arrays = config[0];
    m->max_block = max_block;
    m->block = round_up(max_block, TILE);
    m->arrays = calloc((size_t)m->n_arrays, sizeof(Array));
    if (!m->arrays) goto fail;
    int c = 1, widest = 1, max_src = 1, scratch = 1;
    long w = 0, p = 0;
    if (n_act_params > 0 && !(m->act_params = malloc(sizeof(float) * (size_t)n_act_params))) goto fail;
    if (n_act_params > 0) memcpy(m->act_params, act_params, sizeof(float) * (size_t)n_act_params);
    for (int a = 0; a < m->n_arrays; a++) {
        Array *A = &m->arrays[a];
        if (c + ARRAY_FIELDS > config_len) goto fail;
        A->input_size = config[c++];
        A->cond_size = config[c++];
        A->head_size = config[c++];
        A->channels = config[c++];
        A->bottleneck = config[c++];
        A->gating = config[c++];
        int head_bias = config[c++];
        A->act = config[c++];
        A->head_kernel = config[c++];
        A->head_dilation = config[c++];
        A->n_layers = config[c++];
        A->sec = config[c++];
        A->layer1x1 = config[c++];
        const int l1x1_groups = config[c++], h1x1_out = config[c++], h1x1_groups = config[c++];
        const int groups_input = config[c++], groups_mixin = config[c++];
        int film_groups[N_FILM], film_shift[N_FILM];
        for (int f = 0; f < N_FILM; f++) {
            film_groups[f] = config[c++];
            film_shift[f] = config[c++];
            if (film_groups[f] > 0) A->films |= 1 << f;
        }
        A->gated = A->gating == 1;
        A->head1x1 = h1x1_out > 0;
        A->head_in = A->head1x1 ? h1x1_out : A->bottleneck;
        A->split = (A->films & (1 << FILM_CONV_POST | 1 << FILM_MIX_PRE | 1 << FILM_MIX_POST)) != 0;
        if (A->sec < 0) A->sec = ACT_SIGMOID;
        A->rich = A->gating == 2 || A->sec != ACT_SIGMOID || !A->layer1x1 || A->head1x1 || A->films;
        const int ch = A->channels, bn = A->bottleneck, cond = A->cond_size;
        if (ch < 1 || bn < 1 || cond < 1 || A->input_size < 1 || A->head_size < 1 || A->n_layers < 1 ||
            A->act < 0 || A->act >= N_ACT || A->sec >= N_ACT || A->gating < 0 || A->gating > 2 ||
            A->head_kernel < 1 || A->head_dilation < 1 || (!A->layer1x1 && bn != ch) ||
            c + 5 * A->n_layers > config_len)
            goto fail;
        if (a == 0 ? A->input_size > cond : A->input_size != m->arrays[a - 1].channels) goto fail;
        if (a > 0 && A->head_in != m->arrays[a - 1].head_size) goto fail;
        m->cond_size = cond;
        scratch = 2 * (2 * bn > ch ? 2 * bn : ch) > scratch ? 2 * (2 * bn > ch ? 2 * bn : ch) : scratch;
        scratch = 2 * cond > scratch ? 2 * cond : scratch;
        scratch = 2 * A->head_in > scratch ? 2 * A->head_in : scratch;
        scratch = cond > scratch ? cond : scratch;
        scratch = A->head_in > scratch ? A->head_in : scratch;
        widest = round_up(2 * bn > widest ? 2 * bn : widest, RB);
        if (w + (long)ch * A->input_size > n_weights) goto fail;
        if (!dense_init(&A->rechannel, weights + w, NULL, ch, A->input_size)) goto fail;
        w += (long)ch * A->input_size;
        A->layers = calloc((size_t)A->n_layers, sizeof(Layer));
        if (!A->layers) goto fail;
        for (int l = 0; l < A->n_layers; l++) {
            Layer *L = &A->layers[l];
            const int k = config[c++];
            L->kernel = k;
            L->dilation = config[c++];
            L->act = config[c++];
            L->gating = config[c++];
            L->sec = config[c++];
            if (L->sec < 0) L->sec = ACT_SIGMOID;
            const int mid = L->mid = L->gating ? 2 * bn : bn;
            if (k < 1 || L->dilation < 1 || L->act < 0 || L->act >= N_ACT || L->sec >= N_ACT || L->gating < 0 ||
                L->gating > 2 || mid % groups_input || mid % groups_mixin || p + 2 * (ACT_PARAMS + bn) > n_act_params)
                goto fail;
            L->act_p = m->act_params + p;
            L->sec_p = m->act_params + p + ACT_PARAMS + bn;
            p += 2 * (ACT_PARAMS + bn);
            /* what only rich_layer runs: a layer unlike the array's first, or parameters */
            if (L->act != A->act || L->gating != A->gating || L->sec != A->sec || L->act >= ACT_PRELU ||
                L->sec >= ACT_PRELU || (L->act == ACT_LEAKY_RELU && L->act_p[0] != 0.01f) ||
                (L->gating && L->sec == ACT_LEAKY_RELU && L->sec_p[0] != 0.01f))
                A->rich = 1;
            const int dims[N_FILM] = {ch, mid, cond, mid, mid, bn, ch, A->head_in};
            L->history = (k - 1) * L->dilation;
            L->length = buffer_length(L->history, m->block);
            L->buf = calloc((size_t)ch * L->length, sizeof(float));
            L->tap_off = malloc(sizeof(int) * (size_t)ch * k);
            if (!L->buf || !L->tap_off) goto fail;
            for (int ci = 0; ci < ch; ci++)
                for (int j = 0; j < k; j++) L->tap_off[ci * k + j] = ci * L->length - (k - 1 - j) * L->dilation;
            L->pos = L->history;
            m->prewarm += L->history;
            max_src = ch * k + cond > max_src ? ch * k + cond : max_src;
            /* the dilated conv and the input mixer, ungrouped */
            long conv_n = (long)mid * (ch / groups_input) * k, mix_n = (long)mid * (cond / groups_mixin);
            if (ch % groups_input || cond % groups_mixin || w + conv_n + mid + mix_n > n_weights) goto fail;
            conv_full = malloc(sizeof(float) * (size_t)mid * ch * k);
            mix_full = malloc(sizeof(float) * (size_t)mid * cond);
            if (!conv_full || !mix_full || !ungroup(weights + w, mid, ch, k, groups_input, conv_full) ||
                !ungroup(weights + w + conv_n + mid, mid, cond, 1, groups_mixin, mix_full))
                goto fail;
            const float *conv_b = weights + w + conv_n;
            if (A->split) {
                if (!dense_init(&L->conv, conv_full, conv_b, mid, ch * k) ||
                    !dense_init(&L->mixer, mix_full, NULL, mid, cond))
                    goto fail;
            } else {
                combined = malloc(sizeof(float) * (size_t)mid * (ch * k + cond));
                if (!combined) goto fail;
                for (int r = 0; r < mid; r++) { /* row r: the conv's ch*k taps, then the mixer's cond inputs */
                    memcpy(combined + (size_t)r * (ch * k + cond), conv_full + (size_t)r * ch * k, sizeof(float) * ch * k);
                    memcpy(combined + (size_t)r * (ch * k + cond) + ch * k, mix_full + (size_t)r * cond, sizeof(float) * cond);
                }
                if (!dense_init(&L->conv, combined, conv_b, mid, ch * k + cond)) goto fail;
                free(combined);
                combined = NULL;
            }
            free(conv_full);
            free(mix_full);
            conv_full = mix_full = NULL;
            w += conv_n + mid + mix_n;
            if (A->layer1x1 && !read_conv(&L->conv1x1, weights, n_weights, &w, ch, bn, 1, l1x1_groups, 1)) goto fail;
            if (A->head1x1 && !read_conv(&L->head1x1, weights, n_weights, &w, A->head_in, bn, 1, h1x1_groups, 1))
                goto fail;
            for (int f = 0; f < N_FILM; f++) {
                if (!film_groups[f]) continue;
                Film *F = &L->film[f];
                F->dim = dims[f];
                F->shift = film_shift[f];
                if (!read_conv(&F->d, weights, n_weights, &w, (F->shift ? 2 : 1) * F->dim, cond, 1, film_groups[f], 1))
                    goto fail;
            }
        }
        const int hk = A->head_kernel, hin = A->head_in;
        long head_need = (long)A->head_size * hin * hk + (head_bias ? A->head_size : 0);
        if (w + head_need > n_weights) goto fail;
        const float *head_b = head_bias ? weights + w + (long)A->head_size * hin * hk : NULL;
        if (!dense_init(&A->head, weights + w, head_b, A->head_size, hin * hk)) goto fail;
        w += head_need;
        max_src = hin * hk > max_src ? hin * hk : max_src;
        A->head_history = (hk - 1) * A->head_dilation;
        A->head_length = buffer_length(A->head_history, m->block);
        A->head_pos = A->head_history;
        m->prewarm += A->head_history;
        A->head_buf = calloc((size_t)hin * A->head_length, sizeof(float));
        A->out = calloc((size_t)ch * m->block, sizeof(float));
        A->head_out = calloc((size_t)A->head_size * m->block, sizeof(float));
        if (!A->head_buf || !A->out || !A->head_out) goto fail;
        widest = round_up(A->head_size > widest ? A->head_size : widest, RB);
        widest = round_up(bn > widest ? bn : widest, RB);
    }
    /* the top-level head: n_post, its activation, then per conv its outputs and kernel */
    if (c + 2 > config_len) goto fail;
    m->n_post = config[c++];
    m->post_act = config[c++];
    m->out_rows = m->arrays[m->n_arrays - 1].head_size;
    if (m->n_post < 0 || c + 2 * m->n_post != config_len || (m->n_post && (m->post_act < 0 || m->post_act >= N_ACT)))
        goto fail;
    if (m->n_post) {
        m->post = calloc((size_t)m->n_post, sizeof(PostConv));
        if (!m->post) goto fail;
        int rows = m->out_rows, widest_in = 1;
        for (int i = 0; i < m->n_post; i++) {
            PostConv *P = &m->post[i];
            P->in = rows;
            P->out = config[c++];
            P->kernel = config[c++];
            if (P->out < 1 || P->kernel < 1) goto fail;
            P->history = P->kernel - 1;
            P->length = buffer_length(P->history, m->block);
            P->pos = P->history;
            m->prewarm += P->history;
            P->buf = calloc((size_t)P->in * P->length, sizeof(float));
            if (!P->buf || !read_conv(&P->conv, weights, n_weights, &w, P->out, P->in, P->kernel, 1, 1)) goto fail;
            max_src = P->in * P->kernel > max_src ? P->in * P->kernel : max_src;
            widest_in = P->in > widest_in ? P->in : widest_in;
            widest = round_up(P->out > widest ? P->out : widest, RB);
            rows = P->out;
        }
        m->out_rows = rows;
        if (p + ACT_PARAMS + widest_in > n_act_params) goto fail;
        m->post_p = m->act_params + p;
        p += ACT_PARAMS + widest_in;
        m->post_out = calloc((size_t)widest * m->block, sizeof(float));
        if (!m->post_out) goto fail;
    }
    if (w + 1 != n_weights || p != n_act_params) goto fail; /* head_scale is last */
    m->head_scale = weights[w];
    m->in_size = m->cond_size;
    scratch = round_up(scratch, RB);
    m->z = calloc((size_t)widest * m->block, sizeof(float));
    m->h = calloc((size_t)widest * m->block, sizeof(float));
    m->xr = calloc((size_t)scratch * m->block, sizeof(float));
    m->cf = calloc((size_t)scratch * m->block, sizeof(float));
    m->mx = calloc((size_t)scratch * m->block, sizeof(float));
    m->tmp = calloc((size_t)scratch * m->block, sizeof(float));
    m->ss = calloc((size_t)scratch * m->block, sizeof(float));
    m->cond = calloc((size_t)m->cond_size * m->block, sizeof(float));
    m->silence = calloc((size_t)m->cond_size * m->block, sizeof(float));
    m->sink = calloc((size_t)m->block, sizeof(float));
    m->src = calloc((size_t)(max_src > widest ? max_src : widest) + m->cond_size, sizeof(float *));
    m->csrc = calloc((size_t)m->cond_size, sizeof(float *));
    if (!m->z || !m->h || !m->xr || !m->cf || !m->mx || !m->tmp || !m->ss || !m->cond || !m->silence ||
        !m->sink || !m->src || !m->csrc)
        goto fail;
    for (int q = 0; q < m->cond_size; q++) m->csrc[q] = m->cond + (size_t)q * m->block;
    m->raw = m->cond;
    wavenet_reset(m);
    return m;
fail:
    free(combined);
    free(conv_full);
    free(mix_full);
    wavenet_free(m);
    return NULL;
}

/* A whole layer with few channels (C = channels = bottleneck <= 4, not gated: A2-Lite's 3) over
 * T tiles: the conv taps and input mixer, the activation, the head's sum and the 1x1 with
 * its residual, all in registers. The general path runs each of those as its own pass over
 * the block, storing and reloading z and h between them, and with 3 channels those
 * passes, not the arithmetic, were most of the time. The same operations in the same
 * order as the general path: the results are identical. */
#define SMALL_LAYER(C, T)                                                                               \
    static inline void small_layer_##C##_##T(const Layer *L, int act, const float *x, const float *cond, \
                                             int cond_stride, float *head, int head_stride, float *dst, \
                                             int dst_stride, int t) {                                   \
        const Dense *cv = &L->conv, *pw = &L->conv1x1;                                                  \
        const int taps = C * L->kernel, x_stride = L->length;                                           \
        vec z[T][C];                                                                                    \
        for (int u = 0; u < T; u++)                                                                     \
            for (int r = 0; r < C; r++) z[u][r] = (vec){0} + cv->bias[r];                               \
        for (int i = 0; i < cv->k; i++) { /* the taps, then the input mixer's rows */                  \
            const float *wi = cv->w + (size_t)i * RB;                                                   \
            const float *row = i < taps ? x + L->tap_off[i] : cond + (size_t)(i - taps) * cond_stride;  \
            for (int u = 0; u < T; u++) {                                                               \
                const vec xv = vload(row + t + u * TILE);                                               \
                for (int r = 0; r < C; r++) z[u][r] += xv * wi[r];                                      \
            }                                                                                           \
        }                                                                                               \
        for (int u = 0; u < T; u++) {                                                                   \
            const int tu = t + u * TILE;                                                                \
            vec o[C];                                                                                   \
            for (int r = 0; r < C; r++) o[r] = (vec){0} + pw->bias[r] + vload(x + (size_t)r * x_stride + tu); \
            for (int c = 0; c < C; c++) {                                                               \
                const vec h = activation(act, z[u][c]);                                                 \
                float *hd = head + (size_t)c * head_stride + tu;                                        \
                vstore(hd, vload(hd) + h);                                                              \
                for (int r = 0; r < C; r++) o[r] += h * pw->w[(size_t)c * RB + r];                     \
            }                                                                                           \
            for (int r = 0; r < C; r++) vstore(dst + (size_t)r * dst_stride + tu, o[r]);                \
        }                                                                                               \
    }
SMALL_LAYER(1, 4)
SMALL_LAYER(2, 4)
SMALL_LAYER(3, 4)
SMALL_LAYER(4, 2)
SMALL_LAYER(1, 1)
SMALL_LAYER(2, 1)
SMALL_LAYER(3, 1)
SMALL_LAYER(4, 1)

/* A layer that small_layer_* can run: few channels, no gate. */
static int small_layer(const Array *A) {
    return !A->rich && !A->gated && A->channels == A->bottleneck && A->channels <= 4;
}

/* One small layer over nt samples (whole tiles): several tiles a pass, then one at a time. */
static void small_layer_run(const Layer *L, int ch, int act, const float *cond, int cond_stride, float *head,
                            int head_stride, float *dst, int dst_stride, int nt) {
    const float *x = L->buf + L->pos;
    int t = 0;
#define SMALL_ARGS L, act, x, cond, cond_stride, head, head_stride, dst, dst_stride
    switch (ch) {
    case 1: for (; t + 4 * TILE <= nt; t += 4 * TILE) small_layer_1_4(SMALL_ARGS, t); break;
    case 2: for (; t + 4 * TILE <= nt; t += 4 * TILE) small_layer_2_4(SMALL_ARGS, t); break;
    case 3: for (; t + 4 * TILE <= nt; t += 4 * TILE) small_layer_3_4(SMALL_ARGS, t); break;
    default: for (; t + 2 * TILE <= nt; t += 2 * TILE) small_layer_4_2(SMALL_ARGS, t); break;
    }
    for (; t < nt; t += TILE) {
        switch (ch) {
        case 1: small_layer_1_1(SMALL_ARGS, t); break;
        case 2: small_layer_2_1(SMALL_ARGS, t); break;
        case 3: small_layer_3_1(SMALL_ARGS, t); break;
        default: small_layer_4_1(SMALL_ARGS, t); break;
        }
    }
#undef SMALL_ARGS
}

/* Make room for n new samples at *pos in a rows x length buffer that keeps `history` past
 * samples, rewinding it when it is full. */
static void make_room(float *buf, int rows, int length, int history, int *pos, int n) {
    if (*pos + n <= length) return;
    for (int c = 0; c < rows; c++) {
        float *b = buf + (size_t)c * length;
        memmove(b, b + *pos - history, sizeof(float) * (size_t)history);
    }
    *pos = history;
}

/* x (dim rows of nt samples, `stride` apart) = x * scale(cond) (+ shift(cond)), in place. */
static void film_apply(WaveNet *m, const Film *F, float *x, int stride, int nt) {
    const int B = m->block, dim = F->dim;
    dense(&F->d, m->csrc, NULL, 0, m->ss, B, nt);
    for (int r = 0; r < dim; r++) {
        float *xr = x + (size_t)r * stride;
        const float *scale = m->ss + (size_t)r * B, *shift = m->ss + (size_t)(r + dim) * B;
        for (int t = 0; t < nt; t += TILE) {
            vec v = vload(xr + t) * vload(scale + t);
            if (F->shift) v += vload(shift + t);
            vstore(xr + t, v);
        }
    }
}

/* rows x nt: dst += src (strides dst_stride, src_stride). */
static void add_rows(float *dst, int dst_stride, const float *src, int src_stride, int rows, int nt) {
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < nt; t += TILE) {
            float *d = dst + (size_t)r * dst_stride + t;
            vstore(d, vload(d) + vload(src + (size_t)r * src_stride + t));
        }
}

/* One layer with NAM 0.6/0.7's features (blended gating, other gates, FiLM, head1x1, no
 * layer1x1), in the order of WaveNetLayer.forward in ampnet/models/layer_array.py. */
static void rich_layer(WaveNet *m, const Array *A, Layer *L, float *acc, int HL, float *dst, int dst_stride, int nt) {
    const int B = m->block, ch = A->channels, bn = A->bottleneck, cond = A->cond_size, k = L->kernel;
    const int mid = L->mid;
    const float **src = m->src;
    float *x = L->buf + L->pos, *z = m->z, *h = m->h;
    const float *res = x; /* the residual: the layer's input before any FiLM */
    int res_stride = L->length;
#define ON(f) (A->films & (1 << (f)))
    if (ON(FILM_CONV_PRE)) { /* the conv, and so its history, sees the FiLMed input */
        for (int r = 0; r < ch; r++) memcpy(m->xr + (size_t)r * B, x + (size_t)r * L->length, sizeof(float) * nt);
        res = m->xr;
        res_stride = B;
        film_apply(m, &L->film[FILM_CONV_PRE], x, L->length, nt);
    }
    for (int c = 0; c < ch; c++)
        for (int j = 0; j < k; j++) src[c * k + j] = x + L->tap_off[c * k + j];
    if (!A->split) {
        for (int q = 0; q < cond; q++) src[ch * k + q] = m->csrc[q];
        dense(&L->conv, src, NULL, 0, z, B, nt);
    } else {
        dense(&L->conv, src, NULL, 0, z, B, nt);
        if (ON(FILM_CONV_POST)) film_apply(m, &L->film[FILM_CONV_POST], z, B, nt);
        const float *const *mix_src = m->csrc;
        if (ON(FILM_MIX_PRE)) {
            for (int q = 0; q < cond; q++) {
                memcpy(m->cf + (size_t)q * B, m->csrc[q], sizeof(float) * nt);
                src[q] = m->cf + (size_t)q * B;
            }
            film_apply(m, &L->film[FILM_MIX_PRE], m->cf, B, nt);
            mix_src = src;
        }
        dense(&L->mixer, mix_src, NULL, 0, m->mx, B, nt);
        if (ON(FILM_MIX_POST)) film_apply(m, &L->film[FILM_MIX_POST], m->mx, B, nt);
        add_rows(z, B, m->mx, B, mid, nt);
    }
    if (ON(FILM_ACT_PRE)) film_apply(m, &L->film[FILM_ACT_PRE], z, B, nt);
    for (int c = 0; c < bn; c++)
        for (int t = 0; t < nt; t += TILE) {
            const vec za = vload(z + (size_t)c * B + t);
            vec a = activation_p(L->act, za, L->act_p, c);
            if (L->gating == 1) {
                a *= activation_p(L->sec, vload(z + (size_t)(c + bn) * B + t), L->sec_p, c);
            } else if (L->gating == 2) { /* a mix of the activation and its input */
                const vec s = activation_p(L->sec, vload(z + (size_t)(c + bn) * B + t), L->sec_p, c);
                a = s * a + (1.0f - s) * za;
            }
            vstore(h + (size_t)c * B + t, a);
        }
    if (ON(FILM_ACT_POST)) film_apply(m, &L->film[FILM_ACT_POST], h, B, nt);
    for (int c = 0; c < bn; c++) src[c] = h + (size_t)c * B;
    if (A->head1x1) {
        dense(&L->head1x1, src, NULL, 0, m->tmp, B, nt);
        if (ON(FILM_H1X1_POST)) film_apply(m, &L->film[FILM_H1X1_POST], m->tmp, B, nt);
        add_rows(acc, HL, m->tmp, B, A->head_in, nt);
    } else {
        add_rows(acc, HL, h, B, bn, nt);
    }
    if (!A->layer1x1) { /* the input passes on unchanged */
        for (int r = 0; r < ch; r++)
            memcpy(dst + (size_t)r * dst_stride, res + (size_t)r * res_stride, sizeof(float) * nt);
    } else if (L->gating == 2 && ON(FILM_L1X1_POST)) { /* NAM applies this FiLM in blended layers only */
        dense(&L->conv1x1, src, NULL, 0, m->tmp, B, nt);
        film_apply(m, &L->film[FILM_L1X1_POST], m->tmp, B, nt);
        for (int r = 0; r < ch; r++)
            memcpy(dst + (size_t)r * dst_stride, res + (size_t)r * res_stride, sizeof(float) * nt);
        add_rows(dst, dst_stride, m->tmp, B, ch, nt);
    } else {
        dense(&L->conv1x1, src, res, res_stride, dst, dst_stride, nt);
    }
#undef ON
}

/* Condition `outer` on `dsp`'s output from now on (NAM's condition_dsp): the outer model
 * owns it and reads dsp's input rows. 0 (nothing changed) when the sizes do not fit. */
int wavenet_set_condition(void *outer, void *dsp) {
    WaveNet *m = (WaveNet *)outer, *d = (WaveNet *)dsp;
    if (m->dsp || !d || d->out_rows != m->cond_size || d->max_block < m->max_block ||
        m->arrays[0].input_size > d->cond_size)
        return 0;
    float *raw = calloc((size_t)d->cond_size * m->block, sizeof(float));
    float *silence = calloc((size_t)d->cond_size * m->block, sizeof(float));
    if (!raw || !silence) {
        free(raw);
        free(silence);
        return 0;
    }
    free(m->silence);
    m->silence = silence;
    m->raw = raw;
    m->in_size = d->cond_size;
    m->dsp = d;
    wavenet_reset(m);
    return 1;
}

/* The top-level head on the last array's head output (already times head_scale in `w`'s
 * caller): returns the last conv's output rows. */
static const float *post_head(WaveNet *m, const float *y, int n, int nt) {
    const int B = m->block;
    const float **src = m->src;
    float scale = m->head_scale;
    for (int i = 0; i < m->n_post; i++) {
        PostConv *P = &m->post[i];
        make_room(P->buf, P->in, P->length, P->history, &P->pos, nt);
        float *dst = P->buf + P->pos;
        for (int r = 0; r < P->in; r++)
            for (int t = 0; t < nt; t += TILE)
                vstore(dst + (size_t)r * P->length + t,
                       activation_p(m->post_act, vload(y + (size_t)r * B + t) * scale, m->post_p, r));
        for (int r = 0; r < P->in; r++)
            for (int j = 0; j < P->kernel; j++) src[r * P->kernel + j] = dst + (size_t)r * P->length - (P->kernel - 1 - j);
        dense(&P->conv, src, NULL, 0, m->post_out, B, nt);
        P->pos += n;
        y = m->post_out;
        scale = 1.0f;
    }
    return y;
}

/* One block of n <= max_block samples into out_rows rows of out (out_stride apart). Work
 * runs over nt = n rounded up to whole tiles; the extra samples are scratch written past
 * the end of each history, which the next block overwrites before it is ever read as
 * history. */
static void wavenet_block(WaveNet *m, const float *in, int in_stride, float *out, int out_stride, int n) {
    const int B = m->block, nt = round_up(n, TILE);
    const float **src = m->src;
    for (int q = 0; q < m->in_size; q++) {
        memcpy(m->raw + (size_t)q * B, in + (size_t)q * in_stride, sizeof(float) * (size_t)n);
        memset(m->raw + (size_t)q * B + n, 0, sizeof(float) * (size_t)(nt - n));
    }
    if (m->dsp) { /* the condition: the condition_dsp's output for this block */
        wavenet_block(m->dsp, m->raw, B, m->cond, B, n);
        for (int q = 0; q < m->cond_size; q++) memset(m->cond + (size_t)q * B + n, 0, sizeof(float) * (size_t)(nt - n));
    }
    for (int a = 0; a < m->n_arrays; a++) {
        Array *A = &m->arrays[a];
        const int ch = A->channels, bn = A->bottleneck, cond = A->cond_size, HL = A->head_length;
        const float *x_in = a == 0 ? m->raw : m->arrays[a - 1].out;
        make_room(A->head_buf, A->head_in, HL, A->head_history, &A->head_pos, nt);
        float *acc = A->head_buf + A->head_pos;
        for (int c = 0; c < A->head_in; c++) {
            if (a == 0)
                memset(acc + (size_t)c * HL, 0, sizeof(float) * (size_t)nt);
            else
                memcpy(acc + (size_t)c * HL, m->arrays[a - 1].head_out + (size_t)c * B, sizeof(float) * (size_t)nt);
        }
        Layer *first = &A->layers[0];
        make_room(first->buf, ch, first->length, first->history, &first->pos, nt);
        for (int i = 0; i < A->input_size; i++) src[i] = x_in + (size_t)i * B;
        dense(&A->rechannel, src, NULL, 0, first->buf + first->pos, first->length, nt);
        const int small = small_layer(A);
        for (int l = 0; l < A->n_layers; l++) {
            Layer *L = &A->layers[l];
            const int k = L->kernel;
            const float *x = L->buf + L->pos;
            float *dst = A->out;
            int dst_stride = B;
            if (l + 1 < A->n_layers) {
                Layer *next = &A->layers[l + 1];
                make_room(next->buf, ch, next->length, next->history, &next->pos, nt);
                dst = next->buf + next->pos;
                dst_stride = next->length;
            }
            if (small) {
                small_layer_run(L, ch, A->act, m->cond, B, acc, HL, dst, dst_stride, nt);
            } else if (A->rich) {
                rich_layer(m, A, L, acc, HL, dst, dst_stride, nt);
            } else {
                for (int c = 0; c < ch; c++)
                    for (int j = 0; j < k; j++) src[c * k + j] = x + L->tap_off[c * k + j];
                for (int q = 0; q < cond; q++) src[ch * k + q] = m->cond + (size_t)q * B;
                dense(&L->conv, src, NULL, 0, m->z, B, nt);
                for (int c = 0; c < bn; c++)
                    activate(A->act, m->z + (size_t)c * B, A->gated ? m->z + (size_t)(c + bn) * B : NULL,
                             m->h + (size_t)c * B, acc + (size_t)c * HL, nt);
                for (int c = 0; c < bn; c++) src[c] = m->h + (size_t)c * B;
                dense(&L->conv1x1, src, x, L->length, dst, dst_stride, nt);
            }
            L->pos += n;
        }
        const int hk = A->head_kernel;
        for (int c = 0; c < A->head_in; c++)
            for (int j = 0; j < hk; j++) src[c * hk + j] = acc + (size_t)c * HL - (hk - 1 - j) * A->head_dilation;
        dense(&A->head, src, NULL, 0, A->head_out, B, nt);
        A->head_pos += n;
    }
    const float *y = m->arrays[m->n_arrays - 1].head_out;
    const int rows = out_stride ? m->out_rows : 1; /* out_stride 0: the first row only */
    if (m->n_post) {
        y = post_head(m, y, n, nt);
        for (int r = 0; r < rows; r++) memcpy(out + (size_t)r * out_stride, y + (size_t)r * B, sizeof(float) * n);
        return;
    }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n; t++) out[(size_t)r * out_stride + t] = m->head_scale * y[(size_t)r * B + t];
}

/* in: the input's planar channels of n samples (channel c at in + c * stride); out: n
 * samples (the first output row: a model's only one). */
void wavenet_process(void *handle, const float *in, int stride, float *out, int n) {
    WaveNet *m = (WaveNet *)handle;
    for (int done = 0; done < n; done += m->max_block) {
        int len = n - done < m->max_block ? n - done : m->max_block;
        wavenet_block(m, in + done, stride, out + done, 0, len);
    }
}

/* ---------------------------------------------------------------- LSTM -- */

/* Gates are stored packed, i f g o, H each (gp = 4H rounded up to TILE lanes): the gate
 * sums waste no lanes. The activations read each gate's H values as whole vectors (the
 * last one running into the next gate) and keep only the lanes below H. */
typedef struct {
    int input_size, hidden, n_layers, skip, hp;
    float *wt;      /* per layer (in + H) rows of 4 * hp gate weights: column j of [W_ih W_hh] */
    long *wt_off;   /* where each layer's rows start */
    float *bias;    /* per layer 4 * hp */
    float *h0, *c0; /* per layer hp */
    float *head_w;  /* hp */
    float head_b;
    float *h, *c;   /* state: per layer hp */
    float *g;       /* 4 * hp */
    float *v;       /* concat(input, h), with room for h's padding */
} Lstm;

void lstm_destroy(void *handle) {
    Lstm *m = (Lstm *)handle;
    if (!m) return;
    free(m->wt);
    free(m->wt_off);
    free(m->bias);
    free(m->h0);
    free(m->c0);
    free(m->head_w);
    free(m->h);
    free(m->c);
    free(m->g);
    free(m->v);
    free(m);
}

void lstm_reset(void *handle) {
    Lstm *m = (Lstm *)handle;
    memcpy(m->h, m->h0, sizeof(float) * (size_t)m->n_layers * m->hp);
    memcpy(m->c, m->c0, sizeof(float) * (size_t)m->n_layers * m->hp);
}

/* Start from (h, c) from now on (each n_layers x hidden, row-major): a state after silence
 * that depends on the knobs, computed by the caller. */
void lstm_set_start(void *handle, const float *h, const float *c) {
    Lstm *m = (Lstm *)handle;
    for (int l = 0; l < m->n_layers; l++) {
        memcpy(m->h0 + (size_t)l * m->hp, h + (size_t)l * m->hidden, sizeof(float) * m->hidden);
        memcpy(m->c0 + (size_t)l * m->hp, c + (size_t)l * m->hidden, sizeof(float) * m->hidden);
    }
    lstm_reset(m);
}

/* weights: NAM's LSTM order (per layer [W_ih W_hh] (4H x (in + H), row-major, gates i f g o),
 * b_ih + b_hh, h0, c0; then the head's W (H) and b). */
void *lstm_create(int input_size, int hidden, int n_layers, int skip, const float *weights, long n_weights) {
    if (input_size < 1 || hidden < 1 || n_layers < 1) return NULL;
    Lstm *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    const int H = hidden, hp = round_up(H, TILE), G = 4 * H, gp = round_up(G, TILE);
    m->input_size = input_size;
    m->hidden = H;
    m->n_layers = n_layers;
    m->skip = skip;
    m->hp = hp;
    long need = 0, rows = 0;
    for (int l = 0; l < n_layers; l++) {
        int width = (l == 0 ? input_size : H) + H;
        need += (long)width * G + G + 2 * H;
        rows += width;
    }
    need += H + 1;
    int widest = (input_size > H ? input_size : H) + H;
    m->wt = calloc((size_t)rows * gp, sizeof(float));
    m->wt_off = calloc((size_t)n_layers, sizeof(long));
    m->bias = calloc((size_t)n_layers * gp, sizeof(float));
    m->h0 = calloc((size_t)n_layers * hp, sizeof(float));
    m->c0 = calloc((size_t)n_layers * hp, sizeof(float));
    m->head_w = calloc((size_t)hp, sizeof(float));
    m->h = calloc((size_t)n_layers * hp, sizeof(float));
    m->c = calloc((size_t)n_layers * hp, sizeof(float));
    m->g = calloc((size_t)gp + hp, sizeof(float)); /* + the last gate's overhang */
    m->v = calloc((size_t)widest + hp, sizeof(float));
    if (n_weights != need || !m->wt || !m->wt_off || !m->bias || !m->h0 || !m->c0 || !m->head_w || !m->h ||
        !m->c || !m->g || !m->v) {
        lstm_destroy(m);
        return NULL;
    }
    long w = 0, off = 0;
    for (int l = 0; l < n_layers; l++) {
        int width = (l == 0 ? input_size : H) + H;
        m->wt_off[l] = off;
        for (int r = 0; r < G; r++) {
            const float *row = weights + w + (long)r * width;
            for (int j = 0; j < width; j++) m->wt[off + (long)j * gp + r] = row[j];
        }
        w += (long)width * G;
        off += (long)width * gp;
        memcpy(m->bias + (size_t)l * gp, weights + w, sizeof(float) * G);
        w += G;
        memcpy(m->h0 + (size_t)l * hp, weights + w, sizeof(float) * H);
        w += H;
        memcpy(m->c0 + (size_t)l * hp, weights + w, sizeof(float) * H);
        w += H;
    }
    memcpy(m->head_w, weights + w, sizeof(float) * H);
    m->head_b = weights[w + H];
    lstm_reset(m);
    return m;
}

/* Vector registers the gate sums may hold at once (x86 before AVX-512 has 16, AVX-512 and
 * AArch64 32; a few stay free for the inputs), and the independent multiply-add chains that
 * keep the FMA units busy (about 4 cycles of latency times 2 units). */
#if defined(__AVX512F__) || defined(__aarch64__)
#define ACC_REGS 24
#else
#define ACC_REGS 12
#endif
#define CHAINS 8
#define NV_LIST(X)                                                                                      \
    X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) \
    X(19) X(20) X(21) X(22) X(23) X(24)

/* NV gate vectors of TILE gates from g0: g = bias + sum_j v[j] * column j of the weights.
 * Each gate vector is one chain of `cols` dependent multiply-adds; when NV is below CHAINS
 * the columns are dealt round-robin to S partial sums (added at the end), so that enough
 * chains run side by side: a 24-unit LSTM on AVX-512 is 6 gate vectors, 12 chains. */
#define LSTM_GATES(NV)                                                                                  \
    static inline void lstm_gates_##NV(const float *wt, const float *b, const float *v, int cols, int gp, \
                                       int g0, float *g) {                                              \
        enum { S0 = NV >= CHAINS ? 1 : (CHAINS + NV - 1) / NV, S1 = ACC_REGS / NV > 1 ? ACC_REGS / NV : 1, \
               S = S0 < S1 ? S0 : S1 };                                                                 \
        vec acc[S][NV];                                                                                 \
        for (int q = 0; q < NV; q++) acc[0][q] = vload(b + g0 + q * TILE);                              \
        for (int s = 1; s < S; s++)                                                                     \
            for (int q = 0; q < NV; q++) acc[s][q] = (vec){0};                                          \
        int j = 0;                                                                                      \
        for (; j + S <= cols; j += S)                                                                   \
            _Pragma("GCC unroll 8") for (int s = 0; s < S; s++) {                                       \
                const float *col = wt + (size_t)(j + s) * gp + g0;                                      \
                const float vj = v[j + s];                                                              \
                _Pragma("GCC unroll 24") for (int q = 0; q < NV; q++) acc[s][q] += vj * vload(col + q * TILE); \
            }                                                                                           \
        for (; j < cols; j++) {                                                                         \
            const float *col = wt + (size_t)j * gp + g0;                                                \
            const float vj = v[j];                                                                      \
            _Pragma("GCC unroll 24") for (int q = 0; q < NV; q++) acc[0][q] += vj * vload(col + q * TILE); \
        }                                                                                               \
        for (int s = 1; s < S; s++)                                                                     \
            for (int q = 0; q < NV; q++) acc[0][q] += acc[s][q];                                        \
        for (int q = 0; q < NV; q++) vstore(g + g0 + q * TILE, acc[0][q]);                              \
    }
NV_LIST(LSTM_GATES)

/* A whole LSTM cell when the hidden size is HV whole vectors and all 4 HV gate vectors fit
 * in registers (24 units on AVX2): the gate sums as in lstm_gates_*, then c and h straight
 * from the registers, with no store and reload of the gates in between. Gate vector q is
 * i for q < HV, then f, g and o. Same operations in the same order as lstm_gates_* and
 * the general cell loop: the results are identical. */
#define LSTM_CELL(HV)                                                                                   \
    static inline void lstm_cell_##HV(const float *wt, const float *b, const float *v, int cols, float *h, \
                                      float *cs) {                                                      \
        enum { NV = 4 * HV, S0 = NV >= CHAINS ? 1 : (CHAINS + NV - 1) / NV,                             \
               S1 = ACC_REGS / NV > 1 ? ACC_REGS / NV : 1, S = S0 < S1 ? S0 : S1 };                      \
        const int gp = NV * TILE;                                                                       \
        vec acc[S][NV];                                                                                 \
        for (int q = 0; q < NV; q++) acc[0][q] = vload(b + q * TILE);                                   \
        for (int s = 1; s < S; s++)                                                                     \
            for (int q = 0; q < NV; q++) acc[s][q] = (vec){0};                                          \
        int j = 0;                                                                                      \
        for (; j + S <= cols; j += S)                                                                   \
            _Pragma("GCC unroll 8") for (int s = 0; s < S; s++) {                                       \
                const float *col = wt + (size_t)(j + s) * gp;                                           \
                const float vj = v[j + s];                                                              \
                _Pragma("GCC unroll 24") for (int q = 0; q < NV; q++) acc[s][q] += vj * vload(col + q * TILE); \
            }                                                                                           \
        for (; j < cols; j++) {                                                                         \
            const float *col = wt + (size_t)j * gp;                                                     \
            const float vj = v[j];                                                                      \
            _Pragma("GCC unroll 24") for (int q = 0; q < NV; q++) acc[0][q] += vj * vload(col + q * TILE); \
        }                                                                                               \
        for (int s = 1; s < S; s++)                                                                     \
            for (int q = 0; q < NV; q++) acc[0][q] += acc[s][q];                                        \
        for (int r = 0; r < HV; r++) {                                                                  \
            vec ni, di, nf, df, ng, dg, no, dn, nc, dc;                                                 \
            vsigmoid_q(acc[0][r], &ni, &di);                                                            \
            vsigmoid_q(acc[0][HV + r], &nf, &df);                                                       \
            vtanh_q(acc[0][2 * HV + r], &ng, &dg);                                                      \
            vsigmoid_q(acc[0][3 * HV + r], &no, &dn);                                                   \
            const vec dig = di * dg;                                                                    \
            const vec c = (nf * vload(cs + r * TILE) * dig + ni * ng * df) / (df * dig);                \
            vtanh_q(c, &nc, &dc);                                                                       \
            vstore(cs + r * TILE, c);                                                                   \
            vstore(h + r * TILE, (no * nc) / (dn * dc));                                                \
        }                                                                                               \
    }
#define HV_LIST(X) X(1) X(2) X(3) X(4) X(5) X(6)
HV_LIST(LSTM_CELL)

/* n floats (a multiple of TILE) from src to dst: inline vector moves where memcpy of a size
 * unknown at compile time is a library call. */
INLINE void copy_floats(float *dst, const float *src, int n) {
    for (int r = 0; r < n; r += TILE) vstore(dst + r, vload(src + r));
}

/* in: input_size planar channels of n samples (channel i at in + i * stride); out: n samples. */
void lstm_process(void *handle, const float *in, int stride, float *out, int n) {
    Lstm *m = (Lstm *)handle;
    const int H = m->hidden, hp = m->hp, gp = round_up(4 * H, TILE);
    ivec lane;
    for (int q = 0; q < TILE; q++) lane[q] = q;
    float *g = m->g;
    for (int t = 0; t < n; t++) {
        int width = m->input_size;
        for (int i = 0; i < width; i++) m->v[i] = in[(size_t)i * stride + t];
        for (int l = 0; l < m->n_layers; l++) {
            float *h = m->h + (size_t)l * hp, *cs = m->c + (size_t)l * hp;
            copy_floats(m->v + width, h, hp);
            const float *wt = m->wt + m->wt_off[l], *b = m->bias + (size_t)l * gp;
            const int cols = width + H;
            if (H % TILE == 0 && 4 * H <= ACC_REGS * TILE && H / TILE <= 6) {
                switch (H / TILE) {
#define CELL_CASE(HV)                                                                                   \
    case HV: lstm_cell_##HV(wt, b, m->v, cols, h, cs); break;
                    HV_LIST(CELL_CASE)
#undef CELL_CASE
                }
                if (l + 1 < m->n_layers) copy_floats(m->v, h, hp); /* the next layer's input */
                width = H;
                continue;
            }
            /* gates = bias + [W_ih W_hh] [x; h], as many gate vectors at a time as registers
             * hold (all 12 of a 24-unit LSTM on AVX2): v is read once per sample */
            for (int g0 = 0; g0 < gp;) {
                const int nv = (gp - g0) / TILE > ACC_REGS ? ACC_REGS : (gp - g0) / TILE;
                switch (nv) {
#define GATES_CASE(NV)                                                                                  \
    case NV: lstm_gates_##NV(wt, b, m->v, cols, gp, g0, g); break;
                    NV_LIST(GATES_CASE)
#undef GATES_CASE
                }
                g0 += nv * TILE;
            }
            /* c = f c + i g and h = o tanh(c), each one division: every sigmoid and tanh is a
             * quotient with its denominator in [1, 2] (vsigmoid_q, vtanh_q), so their products
             * cannot overflow, and 2 divisions a vector replace 5 */
            for (int r = 0; r < hp; r += TILE) {
                vec ni, di, nf, df, ng, dg, no, dn;
                vsigmoid_q(vload(g + r), &ni, &di);
                vsigmoid_q(vload(g + H + r), &nf, &df);
                vtanh_q(vload(g + 2 * H + r), &ng, &dg);
                vsigmoid_q(vload(g + 3 * H + r), &no, &dn);
                const vec dig = di * dg;
                const ivec keep = lane + r < H; /* lanes past H hold the next gate's values */
                const vec c = vselect(keep, (nf * vload(cs + r) * dig + ni * ng * df) / (df * dig), (vec){0});
                vec nc, dc;
                vtanh_q(c, &nc, &dc);
                vstore(cs + r, c);
                vstore(h + r, (no * nc) / (dn * dc)); /* c = 0 past H: tanh(c) = 0 there */
            }
            if (l + 1 < m->n_layers) copy_floats(m->v, h, hp); /* the next layer's input */
            width = H;
        }
        const float *hl = m->h + (size_t)(m->n_layers - 1) * hp;
        vec acc = {0};
        for (int r = 0; r < hp; r += TILE) acc += vload(m->head_w + r) * vload(hl + r);
        float y = m->head_b;
        for (int r = 0; r < TILE; r++) y += acc[r];
        out[t] = m->skip ? y + in[t] : y;
    }
}

/* ----------------------------------------------------------------- GRU -- */

/* PyTorch's GRU cell (gates r, z, n; see gru_forward below) for streaming, with the state
 * kept between blocks. Each gate is padded to hp = H rounded up to TILE lanes (zero
 * weights there, so the padding lanes of h stay 0), and the weights are stored
 * transposed, one row of 3 hp gate weights per input (or hidden) unit, so the products
 * stream over whole vectors and the activations run TILE units at a time. */
typedef struct {
    int input_size, hidden, n_layers, skip, hp;
    float *wih;     /* per layer in_l rows of 3 hp */
    long *ih_off;   /* where each layer's input rows start */
    float *whh;     /* per layer hp rows of 3 hp (rows past H are zero) */
    float *bih, *bhh, *h0, *h; /* per layer 3 hp, 3 hp, hp, hp */
    float *head_w;  /* hp */
    float head_b;
    float *gi, *gh, *v; /* 3 hp, 3 hp and max(input_size, hp) of scratch */
} Gru;

void gru_destroy(void *handle) {
    Gru *m = (Gru *)handle;
    if (!m) return;
    free(m->wih);
    free(m->ih_off);
    free(m->whh);
    free(m->bih);
    free(m->bhh);
    free(m->h0);
    free(m->h);
    free(m->head_w);
    free(m->gi);
    free(m->gh);
    free(m->v);
    free(m);
}

void gru_reset(void *handle) {
    Gru *m = (Gru *)handle;
    memcpy(m->h, m->h0, sizeof(float) * (size_t)m->n_layers * m->hp);
}

/* Start from h (n_layers x hidden) from now on: the state after silence, from the caller. */
void gru_set_start(void *handle, const float *h) {
    Gru *m = (Gru *)handle;
    for (int l = 0; l < m->n_layers; l++)
        memcpy(m->h0 + (size_t)l * m->hp, h + (size_t)l * m->hidden, sizeof(float) * m->hidden);
    gru_reset(m);
}

/* weights: per layer W_ih (3H x in, row-major, PyTorch's), W_hh (3H x H), b_ih, b_hh, h0
 * (the state after silence); then the head's W (H) and b. */
void *gru_create(int input_size, int hidden, int n_layers, int skip, const float *weights, long n_weights) {
    if (input_size < 1 || hidden < 1 || n_layers < 1) return NULL;
    Gru *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    const int H = hidden, hp = round_up(H, TILE), G = 3 * hp;
    m->input_size = input_size;
    m->hidden = H;
    m->n_layers = n_layers;
    m->skip = skip;
    m->hp = hp;
    long need = H + 1, in_rows = 0;
    for (int l = 0; l < n_layers; l++) {
        const int in = l == 0 ? input_size : hp;
        need += 3L * H * (l == 0 ? input_size : H) + 3L * H * H + 6L * H + H;
        in_rows += in;
    }
    const int widest = input_size > hp ? input_size : hp;
    m->wih = calloc((size_t)in_rows * G, sizeof(float));
    m->ih_off = calloc((size_t)n_layers, sizeof(long));
    m->whh = calloc((size_t)n_layers * hp * G, sizeof(float));
    m->bih = calloc((size_t)n_layers * G, sizeof(float));
    m->bhh = calloc((size_t)n_layers * G, sizeof(float));
    m->h0 = calloc((size_t)n_layers * hp, sizeof(float));
    m->h = calloc((size_t)n_layers * hp, sizeof(float));
    m->head_w = calloc((size_t)hp, sizeof(float));
    m->gi = calloc((size_t)G, sizeof(float));
    m->gh = calloc((size_t)G, sizeof(float));
    m->v = calloc((size_t)widest, sizeof(float));
    if (n_weights != need || !m->wih || !m->ih_off || !m->whh || !m->bih || !m->bhh || !m->h0 || !m->h ||
        !m->head_w || !m->gi || !m->gh || !m->v) {
        gru_destroy(m);
        return NULL;
    }
    long w = 0, off = 0;
    for (int l = 0; l < n_layers; l++) {
        const int in = l == 0 ? input_size : H, rows = l == 0 ? input_size : hp;
        m->ih_off[l] = off;
        for (int gate = 0; gate < 3; gate++)
            for (int k = 0; k < H; k++)
                for (int j = 0; j < in; j++)
                    m->wih[off + (long)j * G + gate * hp + k] = weights[w + (long)(gate * H + k) * in + j];
        w += 3L * H * in;
        off += (long)rows * G;
        float *whh = m->whh + (size_t)l * hp * G;
        for (int gate = 0; gate < 3; gate++)
            for (int k = 0; k < H; k++)
                for (int j = 0; j < H; j++) whh[(long)j * G + gate * hp + k] = weights[w + (long)(gate * H + k) * H + j];
        w += 3L * H * H;
        for (int gate = 0; gate < 3; gate++) {
            memcpy(m->bih + (size_t)l * G + gate * hp, weights + w + gate * H, sizeof(float) * H);
            memcpy(m->bhh + (size_t)l * G + gate * hp, weights + w + 3 * H + gate * H, sizeof(float) * H);
        }
        w += 6L * H;
        memcpy(m->h0 + (size_t)l * hp, weights + w, sizeof(float) * H);
        w += H;
    }
    memcpy(m->head_w, weights + w, sizeof(float) * H);
    m->head_b = weights[w + H];
    gru_reset(m);
    return m;
}

/* g = b + sum_j v[j] * row j of wt (rows of gp floats), ACC_REGS gate vectors at a time in
 * registers, as the LSTM's gate sums. */
static void gate_sums(const float *wt, const float *b, const float *v, int cols, int gp, float *g) {
    for (int g0 = 0; g0 < gp;) {
        const int nv = (gp - g0) / TILE > ACC_REGS ? ACC_REGS : (gp - g0) / TILE;
        switch (nv) {
#define GATES_CASE(NV)                                                                                  \
    case NV: lstm_gates_##NV(wt, b, v, cols, gp, g0, g); break;
            NV_LIST(GATES_CASE)
#undef GATES_CASE
        }
        g0 += nv * TILE;
    }
}

void gru_process(void *handle, const float *in, int stride, float *out, int n) {
    Gru *m = (Gru *)handle;
    const int hp = m->hp, G = 3 * hp;
    float *gi = m->gi, *gh = m->gh, *v = m->v;
    for (int t = 0; t < n; t++) {
        int width = m->input_size;
        for (int i = 0; i < width; i++) v[i] = in[(size_t)i * stride + t];
        for (int l = 0; l < m->n_layers; l++) {
            float *h = m->h + (size_t)l * hp;
            const float *wih = m->wih + m->ih_off[l], *whh = m->whh + (size_t)l * hp * G;
            gate_sums(wih, m->bih + (size_t)l * G, v, width, G, gi);
            gate_sums(whh, m->bhh + (size_t)l * G, h, m->hidden, G, gh);
            for (int k = 0; k < hp; k += TILE) {
                const vec r = vsigmoid(vload(gi + k) + vload(gh + k));
                const vec z = vsigmoid(vload(gi + hp + k) + vload(gh + hp + k));
                const vec c = vtanh(vload(gi + 2 * hp + k) + r * vload(gh + 2 * hp + k));
                const vec hn = c + z * (vload(h + k) - c);
                vstore(h + k, hn);
                vstore(v + k, hn); /* the next layer's input */
            }
            width = hp;
        }
        const float *hl = m->h + (size_t)(m->n_layers - 1) * hp;
        vec acc = {0};
        for (int r = 0; r < hp; r += TILE) acc += vload(m->head_w + r) * vload(hl + r);
        float y = m->head_b;
        for (int r = 0; r < TILE; r++) y += acc[r];
        out[t] = m->skip ? y + in[t] : y;
    }
}

/* ---------------------------------------------------------------- S4D -- */

/* A stack of diagonal state-space blocks (ampnet/models/s4d.py):
 *   u = inp x;  per block, channel h and complex mode m:
 *     s_hm = Abar_hm s_hm + Bbar_hm u_h   (the input reaches the state first),
 *     y_h = sum_m Re(C2_hm s_hm) + D_h u_h  (C2 = 2 C: the conjugate half of the state),
 *     u += Mix tanh(y) + b;
 *   out = w . u + b (+ the audio with the input skip).
 * The SSM is linear and the rest pointwise in time, so a block of up to S4D_CHUNK samples
 * runs layer by layer: each layer's SSM over the whole chunk, a few modes at a time with
 * their coefficients and states held in registers while the chunk's samples stream past
 * (one memory pass per group of modes, not one per sample), then its tanh and mix for
 * every sample of the chunk. The states and the SSM's coefficients are double: a slow
 * mode's Abar is within 1e-4 of 1, and a float recurrence drifts from the exact convolution
 * the model trains with. Modes are stored mode-major (m, h), so every update runs across
 * the channels in whole vectors; the channels are padded with zeros to whole float vectors
 * (Hp), so no loop has a tail. The pointwise maps are float, as PyTorch runs them, their
 * weights transposed (input major) so each output vector of the mix sums its inputs in
 * registers. */
typedef double dvec __attribute__((vector_size(TILE * sizeof(float))));
#define DLANES (TILE / 2)
INLINE dvec dload(const double *p) {
    dvec v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void dstore(double *p, dvec v) { memcpy(p, &v, sizeof v); }

typedef struct {
    int input_size, hidden, padded, modes, n_layers, skip;
    float *inp_t, *inp_b;   /* I x Hp (transposed), Hp */
    double *coef;           /* per layer: Abar re, im, Bbar re, im, C2 re, im (each M x Hp), D (Hp) */
    float *mix_t, *mix_b;   /* per layer H x Hp (transposed), Hp */
    float *out_w;           /* Hp */
    float out_b;
    double *s0, *s;         /* per layer: re (M x Hp), then im (M x Hp) */
    double *ud, *yd;        /* S4D_CHUNK x Hp each: a layer's input and SSM output */
    float *u, *y;           /* S4D_CHUNK x Hp each: the stream and tanh of the SSM output */
} S4d;

#define S4D_CHUNK 64
#define S4D_GROUP 4 /* modes whose recurrences run side by side */

void s4d_destroy(void *handle) {
    S4d *m = (S4d *)handle;
    if (!m) return;
    free(m->inp_t);
    free(m->inp_b);
    free(m->coef);
    free(m->mix_t);
    free(m->mix_b);
    free(m->out_w);
    free(m->s0);
    free(m->s);
    free(m->ud);
    free(m->yd);
    free(m->u);
    free(m->y);
    free(m);
}

void s4d_reset(void *handle) {
    S4d *m = (S4d *)handle;
    memcpy(m->s, m->s0, sizeof(double) * 2 * (size_t)m->n_layers * m->modes * m->padded);
}

/* Start from these states from now on (per layer H x 2M, the real parts then the imaginary
 * parts of each channel's modes, as S4D.initial_state gives them): the state after silence
 * with the knobs held somewhere, computed by the caller. */
static void s4d_start_layer(S4d *m, int l, const double *state) {
    const int H = m->hidden, Hp = m->padded, M = m->modes;
    double *s0 = m->s0 + (size_t)l * 2 * M * Hp;
    for (int h = 0; h < H; h++)
        for (int k = 0; k < 2 * M; k++) s0[(size_t)k * Hp + h] = state[(size_t)h * 2 * M + k];
}

void s4d_set_start(void *handle, const double *state) {
    S4d *m = (S4d *)handle;
    for (int l = 0; l < m->n_layers; l++) s4d_start_layer(m, l, state + (size_t)l * m->hidden * 2 * m->modes);
    s4d_reset(m);
}

/* weights (double): the input map's W (H x I, row-major) and b (H); per layer Abar re, Abar
 * im, Bbar re, Bbar im, C2 re, C2 im (each H x M), D (H), the mix's W (H x H) and b (H), and
 * the state after silence (H x 2M, as s4d_set_start takes it); then the head's W (H) and b. */
void *s4d_create(int input_size, int hidden, int modes, int n_layers, int skip, const double *weights,
                 long n_weights) {
    if (input_size < 1 || hidden < 1 || modes < 1 || n_layers < 1) return NULL;
    S4d *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    const int I = input_size, H = hidden, Hp = (hidden + TILE - 1) / TILE * TILE, M = modes, L = n_layers;
    m->input_size = I;
    m->hidden = H;
    m->padded = Hp;
    m->modes = M;
    m->n_layers = L;
    m->skip = skip;
    const long per_layer = 6L * H * M + H + (long)H * H + H + 2L * H * M;
    const long need = (long)H * I + H + L * per_layer + H + 1;
    m->inp_t = calloc((size_t)I * Hp, sizeof(float));
    m->inp_b = calloc((size_t)Hp, sizeof(float));
    m->coef = calloc((size_t)L * (6 * M + 1) * Hp, sizeof(double));
    m->mix_t = calloc((size_t)L * H * Hp, sizeof(float));
    m->mix_b = calloc((size_t)L * Hp, sizeof(float));
    m->out_w = calloc((size_t)Hp, sizeof(float));
    m->s0 = calloc((size_t)L * 2 * M * Hp, sizeof(double));
    m->s = calloc((size_t)L * 2 * M * Hp, sizeof(double));
    m->ud = calloc((size_t)S4D_CHUNK * Hp, sizeof(double));
    m->yd = calloc((size_t)S4D_CHUNK * Hp, sizeof(double));
    m->u = calloc((size_t)S4D_CHUNK * Hp, sizeof(float));
    m->y = calloc((size_t)S4D_CHUNK * Hp, sizeof(float));
    if (n_weights != need || !m->inp_t || !m->inp_b || !m->coef || !m->mix_t || !m->mix_b || !m->out_w ||
        !m->s0 || !m->s || !m->ud || !m->yd || !m->u || !m->y) {
        s4d_destroy(m);
        return NULL;
    }
    long w = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < I; i++) m->inp_t[(size_t)i * Hp + h] = (float)weights[w + (long)h * I + i];
    w += (long)H * I;
    for (int h = 0; h < H; h++) m->inp_b[h] = (float)weights[w + h];
    w += H;
    for (int l = 0; l < L; l++) {
        double *coef = m->coef + (size_t)l * (6 * M + 1) * Hp;
        for (int part = 0; part < 6; part++) {
            for (int h = 0; h < H; h++)
                for (int k = 0; k < M; k++) coef[((size_t)part * M + k) * Hp + h] = weights[w + (long)h * M + k];
            w += (long)H * M;
        }
        for (int h = 0; h < H; h++) coef[(size_t)6 * M * Hp + h] = weights[w + h];
        w += H;
        float *mix = m->mix_t + (size_t)l * H * Hp;
        for (int h = 0; h < H; h++)
            for (int j = 0; j < H; j++) mix[(size_t)j * Hp + h] = (float)weights[w + (long)h * H + j];
        w += (long)H * H;
        for (int h = 0; h < H; h++) m->mix_b[(size_t)l * Hp + h] = (float)weights[w + h];
        w += H;
        s4d_start_layer(m, l, weights + w);
        w += 2L * H * M;
    }
    for (int h = 0; h < H; h++) m->out_w[h] = (float)weights[w + h];
    m->out_b = (float)weights[w + H];
    s4d_reset(m);
    return m;
}

/* G modes from k of DLANES channels from h over a chunk of T samples: each mode's
 * s = Abar s + Bbar u_t, and yd_t += Re(C2 s) summed over the G modes. The G recurrences
 * are independent, so their multiply-adds overlap; coefficients and states stay in
 * registers for the whole chunk. */
INLINE void s4d_modes(int T, int Hp, int M, const double *restrict coef, double *restrict re,
                      double *restrict im, const double *restrict ud, double *restrict yd, int h, int k,
                      const int G) {
    const size_t mh = (size_t)M * Hp;
    dvec ar[S4D_GROUP], ai[S4D_GROUP], br[S4D_GROUP], bi[S4D_GROUP], cr[S4D_GROUP], ci[S4D_GROUP];
    dvec sr[S4D_GROUP], si[S4D_GROUP];
    for (int g = 0; g < G; g++) {
        const size_t o = (size_t)(k + g) * Hp + h;
        ar[g] = dload(coef + o);
        ai[g] = dload(coef + mh + o);
        br[g] = dload(coef + 2 * mh + o);
        bi[g] = dload(coef + 3 * mh + o);
        cr[g] = dload(coef + 4 * mh + o);
        ci[g] = dload(coef + 5 * mh + o);
        sr[g] = dload(re + o);
        si[g] = dload(im + o);
    }
    for (int t = 0; t < T; t++) {
        const dvec u = dload(ud + (size_t)t * Hp + h);
        dvec acc = {0};
        for (int g = 0; g < G; g++) {
            const dvec nr = ar[g] * sr[g] - ai[g] * si[g] + br[g] * u;
            const dvec ni = ar[g] * si[g] + ai[g] * sr[g] + bi[g] * u;
            sr[g] = nr;
            si[g] = ni;
            acc += cr[g] * nr - ci[g] * ni;
        }
        dstore(yd + (size_t)t * Hp + h, dload(yd + (size_t)t * Hp + h) + acc);
    }
    for (int g = 0; g < G; g++) {
        const size_t o = (size_t)(k + g) * Hp + h;
        dstore(re + o, sr[g]);
        dstore(im + o, si[g]);
    }
}

/* u += Mix y + b for TILE output channels from h, the inputs in four running sums. */
INLINE void s4d_mix(int H, int Hp, const float *restrict mix, const float *restrict b, const float *restrict y,
                    float *restrict u, int h) {
    vec a0 = vload(u + h) + vload(b + h), a1 = {0}, a2 = {0}, a3 = {0};
    int j = 0;
    for (; j + 4 <= H; j += 4) {
        a0 += vload(mix + (size_t)j * Hp + h) * y[j];
        a1 += vload(mix + (size_t)(j + 1) * Hp + h) * y[j + 1];
        a2 += vload(mix + (size_t)(j + 2) * Hp + h) * y[j + 2];
        a3 += vload(mix + (size_t)(j + 3) * Hp + h) * y[j + 3];
    }
    for (; j < H; j++) a0 += vload(mix + (size_t)j * Hp + h) * y[j];
    vstore(u + h, (a0 + a1) + (a2 + a3));
}

/* One chunk of T <= S4D_CHUNK samples (see s4d_process). */
static void s4d_chunk(S4d *m, const float *in, int stride, float *out, int T) {
    const int I = m->input_size, H = m->hidden, Hp = m->padded, M = m->modes;
    float *restrict u = m->u, *restrict y = m->y;
    double *restrict ud = m->ud, *restrict yd = m->yd;
    for (int t = 0; t < T; t++) {
        float *restrict ut = u + (size_t)t * Hp;
        for (int h = 0; h < Hp; h++) ut[h] = m->inp_b[h];
        for (int i = 0; i < I; i++) {
            const float xi = in[(size_t)i * stride + t], *restrict col = m->inp_t + (size_t)i * Hp;
            for (int h = 0; h < Hp; h++) ut[h] += col[h] * xi;
        }
    }
    const size_t TH = (size_t)T * Hp;
    for (int l = 0; l < m->n_layers; l++) {
        const double *restrict coef = m->coef + (size_t)l * (6 * M + 1) * Hp, *restrict d = coef + (size_t)6 * M * Hp;
        double *restrict re = m->s + (size_t)l * 2 * M * Hp, *restrict im = re + (size_t)M * Hp;
        for (size_t i = 0; i < TH; i++) ud[i] = (double)u[i];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < Hp; h++) yd[(size_t)t * Hp + h] = d[h] * ud[(size_t)t * Hp + h];
        for (int h = 0; h < Hp; h += DLANES) {
            int k = 0;
            for (; k + S4D_GROUP <= M; k += S4D_GROUP) s4d_modes(T, Hp, M, coef, re, im, ud, yd, h, k, S4D_GROUP);
            for (; k < M; k++) s4d_modes(T, Hp, M, coef, re, im, ud, yd, h, k, 1);
        }
        for (size_t i = 0; i < TH; i += TILE) { /* the pad stays 0 */
            vec v;
            for (int j = 0; j < TILE; j++) v[j] = (float)yd[i + j];
            vstore(y + i, vtanh(v));
        }
        const float *restrict mix = m->mix_t + (size_t)l * H * Hp, *restrict b = m->mix_b + (size_t)l * Hp;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < Hp; h += TILE) s4d_mix(H, Hp, mix, b, y + (size_t)t * Hp, u + (size_t)t * Hp, h);
    }
    for (int t = 0; t < T; t++) {
        const float *restrict ut = u + (size_t)t * Hp;
        float o = m->out_b;
        for (int h = 0; h < Hp; h++) o += m->out_w[h] * ut[h];
        out[t] = m->skip ? o + in[t] : o;
    }
}

/* in: input_size planar channels of n samples (channel i at in + i * stride); out: n samples. */
void s4d_process(void *handle, const float *in, int stride, float *out, int n) {
    S4d *m = (S4d *)handle;
    for (int t = 0; t < n; t += S4D_CHUNK) {
        const int T = n - t < S4D_CHUNK ? n - t : S4D_CHUNK;
        s4d_chunk(m, in + t, stride, out + t, T);
    }
}

/* ------------------------------------------------------------ gray box -- */

/* The gray box (ampnet/models/graybox.py), a block at a time:
 *   v = pre * x (a FIR, the input gain in its taps);  w = f(v) - f(0), and 0 where v is;
 *   y = post * w (the output gain in its taps);  with a cabinet, y = cab * y.
 * f is an MLP 1 -> H -> H -> 1 with tanh, or P(v) / (1 + |b_1 v + ... + b_n v^n|).
 * With knobs, a small MLP maps the knobs of every sample to dB offsets d (of the input gain,
 * then of each EQ band's gain), each EQ is one FIR path per gain band beside its base path,
 * and v = (v_0 + sum_b (10^(d_b/20) - 1) v_b) 10^(d_0/20), y = y_0 + sum_b (...) y_b.
 * Each FIR keeps its past inputs and the chunk's new ones in one buffer, so an output is one
 * dot product over contiguous floats, out[i] = sum_j w[j] buf[i + j] (the taps in conv1d's
 * order, reversed), with zero taps in front up to whole vectors. Blocks of any length run in
 * chunks of GB_CHUNK samples; nothing is allocated per block. */
#define GB_CHUNK 256
#define GB_MAX_FIRS 3
#define GB_KNOB_DB 24.0f /* graybox.py's KNOB_RANGE_DB */

typedef struct {
    int taps, paths; /* taps padded to whole vectors */
    float *w;        /* paths x taps */
    float *buf;      /* taps - 1 past inputs, then GB_CHUNK new ones */
    float *mixed;    /* with knobs: the paths summed with the gains in `gains` (taps) */
    float *gains;    /* the base path's gain, then each band's (paths); NAN: none yet */
} GbFir;

typedef struct {
    GbFir fir[GB_MAX_FIRS];
    int n_firs, curve, hidden, num_n, den_n;
    float *w1, *b1, *w2, *b2, *w3, b3; /* the MLP (w2 row-major, output by input) */
    float *num, *den;                  /* the rational curve: a_0..a_m, b_1..b_n */
    float f0;
    int knobs, knob_hidden, offsets;   /* offsets: 1 + the pre-EQ's paths - 1 + the post-EQ's */
    float *kw1, *kb1, *kw2, *kb2;      /* the knob MLP (row-major, as nn.Linear holds them) */
    float *last, *gains, *hid;         /* the last knobs and their gains; the MLP's hidden units */
    int have_last;
    float *g;                          /* offsets x GB_CHUNK: each sample's gains */
    float *v, *w, *paths;              /* GB_CHUNK; GB_CHUNK; max paths x GB_CHUNK */
} GrayBox;

void graybox_destroy(void *handle) {
    GrayBox *m = (GrayBox *)handle;
    if (!m) return;
    for (int i = 0; i < GB_MAX_FIRS; i++) {
        free(m->fir[i].w);
        free(m->fir[i].buf);
        free(m->fir[i].mixed);
        free(m->fir[i].gains);
    }
    float *owned[] = {m->w1, m->b1, m->w2, m->b2, m->w3, m->num, m->den, m->kw1, m->kb1, m->kw2,
                      m->kb2, m->last, m->gains, m->hid, m->g, m->v, m->w, m->paths};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) free(owned[i]);
    free(m);
}

void graybox_reset(void *handle) {
    GrayBox *m = (GrayBox *)handle;
    for (int i = 0; i < m->n_firs; i++) memset(m->fir[i].buf, 0, sizeof(float) * (size_t)(m->fir[i].taps - 1));
    m->have_last = 0;
}

/* A copy of the next n weights (at least one float, so that NULL means out of memory). */
static float *take_floats(const float *weights, long *at, long n) {
    float *dst = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (dst && n > 0) memcpy(dst, weights + *at, sizeof(float) * (size_t)n);
    *at += n;
    return dst;
}

/* shape: the pre-EQ's, the post-EQ's and the cabinet's taps (0: no cabinet); the curve, 0
 * (MLP) or 1 (rational); its size (hidden units, or the numerator's degree); the
 * denominator's degree; the pre-EQ's and the post-EQ's paths (1 + gain bands with knobs,
 * else 1); the knobs (0: none); the knob MLP's hidden units. weights (float): each FIR's
 * paths' taps in conv1d's order; the MLP's W1 (H), b1 (H), W2 (H x H), b2 (H), W3 (H), b3,
 * or the rational's a_0..a_m and b_1..b_n; f(0); with knobs the knob MLP's W1, b1, W2, b2. */
void *graybox_create(const int *shape, const float *weights, long n_weights) {
    const int curve = shape[3], size = shape[4], den = shape[5], knobs = shape[8], kh = shape[9];
    const int paths[GB_MAX_FIRS] = {shape[6], shape[7], 1};
    if (shape[0] < 1 || shape[1] < 1 || shape[2] < 0 || size < 1 || curve < 0 || curve > 1 ||
        (curve == 1 && den < 1) || paths[0] < 1 || paths[1] < 1 || knobs < 0 ||
        (knobs > 0 && kh < 1) || (knobs == 0 && (paths[0] > 1 || paths[1] > 1)))
        return NULL;
    const int offsets = paths[0] + paths[1] - 1;
    const long curve_n = curve == 0 ? 3L * size + (long)size * size + size + 1 : (long)size + 1 + den;
    const long knob_n = knobs ? (long)kh * knobs + kh + (long)offsets * kh + offsets : 0;
    if (n_weights != (long)paths[0] * shape[0] + (long)paths[1] * shape[1] + shape[2] + curve_n + 1 + knob_n)
        return NULL;
    GrayBox *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n_firs = shape[2] > 0 ? 3 : 2;
    m->curve = curve;
    long at = 0;
    int ok = 1, most = 1;
    for (int i = 0; i < m->n_firs && ok; i++) {
        const int n = shape[i], padded = (n + TILE - 1) / TILE * TILE;
        GbFir *f = &m->fir[i];
        f->taps = padded;
        f->paths = paths[i];
        most = paths[i] > most ? paths[i] : most;
        f->w = calloc((size_t)padded * paths[i], sizeof(float));
        f->buf = calloc((size_t)(padded - 1 + GB_CHUNK), sizeof(float));
        if (paths[i] > 1) {
            f->mixed = calloc((size_t)padded, sizeof(float));
            f->gains = calloc((size_t)paths[i], sizeof(float));
            if (f->gains) f->gains[0] = NAN;
        }
        ok = f->w && f->buf && (paths[i] == 1 || (f->mixed && f->gains));
        for (int p = 0; ok && p < paths[i]; p++, at += n)
            memcpy(f->w + (size_t)p * padded + (padded - n), weights + at, sizeof(float) * (size_t)n);
    }
    if (ok && curve == 0) {
        const int H = size;
        m->hidden = H;
        m->w1 = take_floats(weights, &at, H);
        m->b1 = take_floats(weights, &at, H);
        m->w2 = take_floats(weights, &at, H * H);
        m->b2 = take_floats(weights, &at, H);
        m->w3 = take_floats(weights, &at, H);
        m->b3 = weights[at++];
        ok = m->w1 && m->b1 && m->w2 && m->b2 && m->w3;
    } else if (ok) {
        m->num_n = size + 1;
        m->den_n = den;
        m->num = take_floats(weights, &at, size + 1);
        m->den = take_floats(weights, &at, den);
        ok = m->num && m->den;
    }
    if (ok) m->f0 = weights[at++];
    m->knobs = knobs;
    m->knob_hidden = kh;
    m->offsets = offsets;
    if (ok && knobs) {
        m->kw1 = take_floats(weights, &at, kh * knobs);
        m->kb1 = take_floats(weights, &at, kh);
        m->kw2 = take_floats(weights, &at, offsets * kh);
        m->kb2 = take_floats(weights, &at, offsets);
        m->last = calloc((size_t)knobs, sizeof(float));
        m->gains = calloc((size_t)offsets, sizeof(float));
        m->hid = calloc((size_t)kh, sizeof(float));
        m->g = calloc((size_t)offsets * GB_CHUNK, sizeof(float));
        ok = m->kw1 && m->kb1 && m->kw2 && m->kb2 && m->last && m->gains && m->hid && m->g;
    }
    m->v = calloc(GB_CHUNK, sizeof(float));
    m->w = calloc(GB_CHUNK, sizeof(float));
    m->paths = calloc((size_t)most * GB_CHUNK, sizeof(float));
    if (!ok || !m->v || !m->w || !m->paths) {
        graybox_destroy(m);
        return NULL;
    }
    return m;
}

/* The gains of knob values k: 10^(d_0/20) for the input gain, 10^(d_b/20) - 1 for each band,
 * d = 24 tanh(MLP(k)) dB. */
static void gb_knob_gains(GrayBox *m, const float *k) {
    for (int j = 0; j < m->knob_hidden; j++) {
        float a = m->kb1[j];
        for (int i = 0; i < m->knobs; i++) a += m->kw1[(size_t)j * m->knobs + i] * k[i];
        m->hid[j] = tanhf(a);
    }
    for (int o = 0; o < m->offsets; o++) {
        float a = m->kb2[o];
        for (int j = 0; j < m->knob_hidden; j++) a += m->kw2[(size_t)o * m->knob_hidden + j] * m->hid[j];
        const float gain = powf(10.0f, GB_KNOB_DB * tanhf(a) / 20.0f);
        m->gains[o] = o == 0 ? gain : gain - 1.0f;
    }
}

INLINE float vsum(vec a) {
    float sum = 0.0f;
    for (int r = 0; r < TILE; r++) sum += a[r];
    return sum;
}

/* n outputs of one FIR path with taps w over buf (T - 1 + n inputs): four outputs a pass,
 * so each load of the taps serves four multiply-adds. */
static void gb_dot(const float *restrict buf, const float *restrict w, int T, int n, float *restrict o) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *restrict b = buf + i;
        vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int j = 0; j < T; j += TILE) {
            const vec wj = vload(w + j);
            a0 += wj * vload(b + j);
            a1 += wj * vload(b + j + 1);
            a2 += wj * vload(b + j + 2);
            a3 += wj * vload(b + j + 3);
        }
        o[i] = vsum(a0);
        o[i + 1] = vsum(a1);
        o[i + 2] = vsum(a2);
        o[i + 3] = vsum(a3);
    }
    for (; i < n; i++) {
        const float *restrict b = buf + i;
        vec a0 = {0}, a1 = {0};
        int j = 0;
        for (; j + 2 * TILE <= T; j += 2 * TILE) {
            a0 += vload(w + j) * vload(b + j);
            a1 += vload(w + j + TILE) * vload(b + j + TILE);
        }
        for (; j < T; j += TILE) a0 += vload(w + j) * vload(b + j);
        o[i] = vsum(a0 + a1);
    }
}

/* n new inputs (n <= GB_CHUNK) through a FIR: with `gains` NULL each path p into
 * out + p * GB_CHUNK; else (the knobs held over these n samples) the one FIR sum_p gains[p]
 * w_p into out, its taps summed again only when the gains changed. The gains apply at the
 * output, so while they are held the two are the same system. */
static void gb_fir(GbFir *f, const float *x, int n, const float *gains, float *out) {
    const int T = f->taps;
    memcpy(f->buf + T - 1, x, sizeof(float) * (size_t)n);
    if (gains && f->paths > 1) {
        if (memcmp(gains, f->gains, sizeof(float) * (size_t)f->paths) != 0) {
            for (int j = 0; j < T; j++) f->mixed[j] = gains[0] * f->w[j];
            for (int p = 1; p < f->paths; p++)
                for (int j = 0; j < T; j++) f->mixed[j] += gains[p] * f->w[(size_t)p * T + j];
            memcpy(f->gains, gains, sizeof(float) * (size_t)f->paths);
        }
        gb_dot(f->buf, f->mixed, T, n, out);
    } else {
        for (int p = 0; p < f->paths; p++) gb_dot(f->buf, f->w + (size_t)p * T, T, n, out + (size_t)p * GB_CHUNK);
    }
    memmove(f->buf, f->buf + n, sizeof(float) * (size_t)(T - 1));
}

/* w = f(v) - f(0), 0 where v is 0, TILE samples at a time (the chunk's buffers hold whole
 * vectors; lanes past n compute on old values and are not used). */
static void gb_curve(const GrayBox *m, const float *v, int n, float *w) {
    const vec zero = {0};
    for (int i = 0; i < n; i += TILE) {
        const vec x = vload(v + i);
        vec y;
        if (m->curve == 0) {
            const int H = m->hidden;
            vec h1[H];
            for (int j = 0; j < H; j++) h1[j] = vtanh(x * m->w1[j] + m->b1[j]);
            y = zero + m->b3;
            for (int k = 0; k < H; k++) {
                const float *row = m->w2 + (size_t)k * H;
                vec a = zero + m->b2[k];
                for (int j = 0; j < H; j++) a += h1[j] * row[j];
                y += vtanh(a) * m->w3[k];
            }
        } else {
            vec p = zero + m->num[m->num_n - 1], q = zero + m->den[m->den_n - 1];
            for (int k = m->num_n - 2; k >= 0; k--) p = p * x + m->num[k];
            for (int k = m->den_n - 2; k >= 0; k--) q = q * x + m->den[k];
            q = q * x; /* b_1 x + ... + b_n x^n */
            y = p / (1.0f + (vec)((ivec)q & 0x7fffffff));
        }
        vstore(w + i, vselect(x == zero, zero, y - m->f0));
    }
}

/* Whether offsets [from, from + count) of the chunk's gains are the same for its first n
 * samples; if so, their values into held. */
static int gb_held(const GrayBox *m, int from, int count, int n, float *held) {
    for (int o = 0; o < count; o++) {
        const float *g = m->g + (size_t)(from + o) * GB_CHUNK;
        for (int i = 1; i < n; i++)
            if (g[i] != g[0]) return 0;
        held[o] = g[0];
    }
    return 1;
}

/* out = path 0 + sum_b g_b path_b over the first n samples of the chunk's paths, the band
 * gains from offset `first` on. */
static void gb_mix(const GrayBox *m, int first, int paths, int n, float *out) {
    for (int i = 0; i < n; i++) {
        float v = m->paths[i];
        for (int b = 1; b < paths; b++)
            v += m->g[(size_t)(first - 1 + b) * GB_CHUNK + i] * m->paths[(size_t)b * GB_CHUNK + i];
        out[i] = v;
    }
}

/* in: the audio, then each knob, planar (channel c at in + c * stride); out: n samples. */
void graybox_process(void *handle, const float *in, int stride, float *out, int n) {
    GrayBox *m = (GrayBox *)handle;
    const int pre = m->fir[0].paths, post = m->fir[1].paths;
    float k[m->knobs > 0 ? m->knobs : 1], held[pre > post ? pre : post];
    for (int t = 0; t < n; t += GB_CHUNK) {
        const int c = n - t < GB_CHUNK ? n - t : GB_CHUNK;
        for (int i = 0; m->knobs && i < c; i++) { /* each sample's gains; held knobs reuse them */
            int same = m->have_last;
            for (int j = 0; j < m->knobs; j++) {
                k[j] = in[(size_t)(1 + j) * stride + t + i];
                same = same && k[j] == m->last[j];
            }
            if (!same) {
                gb_knob_gains(m, k);
                memcpy(m->last, k, sizeof(float) * (size_t)m->knobs);
                m->have_last = 1;
            }
            for (int o = 0; o < m->offsets; o++) m->g[(size_t)o * GB_CHUNK + i] = m->gains[o];
        }
        /* v = (v_0 + sum_b g_b v_b) g_0: one FIR while the knobs hold, else path by path */
        if (pre > 1 && gb_held(m, 0, pre, c, held)) {
            for (int b = 1; b < pre; b++) held[b] *= held[0];
            gb_fir(&m->fir[0], in + t, c, held, m->v);
        } else if (pre > 1) {
            gb_fir(&m->fir[0], in + t, c, NULL, m->paths);
            gb_mix(m, 1, pre, c, m->v);
            for (int i = 0; i < c; i++) m->v[i] *= m->g[i];
        } else {
            gb_fir(&m->fir[0], in + t, c, NULL, m->v);
            for (int i = 0; m->knobs && i < c; i++) m->v[i] *= m->g[i];
        }
        gb_curve(m, m->v, c, m->w);
        float *y = m->n_firs == 3 ? m->v : out + t;
        held[0] = 1.0f; /* y = y_0 + sum_b g_b y_b */
        if (post > 1 && gb_held(m, pre, post - 1, c, held + 1)) {
            gb_fir(&m->fir[1], m->w, c, held, y);
        } else if (post > 1) {
            gb_fir(&m->fir[1], m->w, c, NULL, m->paths);
            gb_mix(m, pre, post, c, y);
        } else {
            gb_fir(&m->fir[1], m->w, c, NULL, y);
        }
        if (m->n_firs == 3) gb_fir(&m->fir[2], m->v, c, NULL, out + t);
    }
}

/* The TCN and the GCN (ampnet/models/tcn.py) with what the WaveNet kernel cannot say: knob
 * FiLM and TFiLM (models a TCN.as_wavenet turns into WaveNets run there). A chunk of up to
 * TC_CHUNK samples at a time, block by block over the whole chunk:
 *   z = conv_l(x_l) (dilated, causal, the block's input history in a linear buffer rewound
 *   when full); a = act(z), or tanh(z_f) (1 + tanh(z_g)) gated; with knobs a <- scale a +
 *   shift (an MLP of the knobs, per sample); with TFiLM a <- s a + t, s and t per channel from
 *   a GRU stepped once per TFiLM block on the block's peaks of |a| (the peaks of the block
 *   before: strictly causal); then the residual, x_{l+1} = a + g x_l (TCN) or mix a + (g) x_l
 *   (GCN); y = w . x_L + b (TCN) or the head over every block's a (GCN). */
#define TC_CHUNK 256

typedef struct {
    int in, out, kernel, dilation, history, length, pos; /* buf: in x length, next write at pos */
    float *buf;
    Dense conv; /* out x in * kernel, with the bias */
    Dense mix;  /* a GCN block's 1x1 residual (has_mix) */
    int has_mix;
    float *gain; /* the residual's per-channel gain, or NULL */
    /* TFiLM: the GRU's W_ih (3H x c), W_hh transposed (H x 3H, as gru_forward reads it), b_ih,
     * b_hh; the modulation's W (2c x H), b */
    float *w_ih, *w_hh_t, *b_ih, *b_hh, *mod_w, *mod_b;
    float *peak, *hidden, *scale, *shift, *gates; /* c, H, c, c, 3H */
} TcBlock;

typedef struct {
    int gated, act, c, n_blocks, knobs, film_hidden, tfilm, tfilm_hidden;
    int pos; /* samples into the current TFiLM block */
    TcBlock *blocks;
    Dense film1, film2, head;
    float *act_p;                       /* ACT_PARAMS + c */
    float *z, *a, *kin, *fh, *films, *y; /* scratch, rows of TC_CHUNK */
    const float **src;
    float *start; /* the state after silence (tcn_set_start), restored by tcn_reset */
    long start_n;
} Tcn;

void tcn_destroy(void *handle) {
    Tcn *m = (Tcn *)handle;
    if (!m) return;
    for (int i = 0; m->blocks && i < m->n_blocks; i++) {
        TcBlock *b = &m->blocks[i];
        dense_free(&b->conv);
        dense_free(&b->mix);
        float *owned[] = {b->buf, b->gain, b->w_ih, b->w_hh_t, b->b_ih, b->b_hh, b->mod_w, b->mod_b,
                          b->peak, b->hidden, b->scale, b->shift, b->gates};
        for (size_t j = 0; j < sizeof owned / sizeof *owned; j++) free(owned[j]);
    }
    free(m->blocks);
    dense_free(&m->film1);
    dense_free(&m->film2);
    dense_free(&m->head);
    float *owned[] = {m->act_p, m->z, m->a, m->kin, m->fh, m->films, m->y, m->start};
    for (size_t j = 0; j < sizeof owned / sizeof *owned; j++) free(owned[j]);
    free((void *)m->src);
    free(m);
}

/* scale and shift of the next TFiLM block from the GRU state */
static void tc_modulation(const Tcn *m, TcBlock *b) {
    const int c = m->c, H = m->tfilm_hidden;
    for (int r = 0; r < 2 * c; r++) {
        float v = b->mod_b[r];
        for (int k = 0; k < H; k++) v += b->mod_w[(size_t)r * H + k] * b->hidden[k];
        if (r < c) b->scale[r] = v;
        else b->shift[r - c] = v;
    }
}

void gru_forward(int batch, long T, int H, const float *gi, const float *h0, const float *wt,
                 const float *bias, float *hs, float *save);

/* one GRU step on the block's peaks: the input projection here, the recurrence gru_forward's */
static void tc_gru_step(const Tcn *m, TcBlock *b) {
    const int c = m->c, H = m->tfilm_hidden;
    float *gi = b->gates;
    for (int j = 0; j < 3 * H; j++) {
        float u = b->b_ih[j];
        for (int k = 0; k < c; k++) u += b->w_ih[(size_t)j * c + k] * b->peak[k];
        gi[j] = u;
    }
    gru_forward(1, 1, H, gi, b->hidden, b->w_hh_t, b->b_hh, b->hidden, NULL); /* in place */
    tc_modulation(m, b);
}

/* state: every block's input history (in x history, oldest first), then with TFiLM the
 * position in the TFiLM block, every block's running peak (c) and GRU state (H): the order
 * of TCN.initial_state's tensors, flattened. Kept, for tcn_reset. */
void tcn_set_start(void *handle, const float *state) {
    Tcn *m = (Tcn *)handle;
    if (state != m->start) memcpy(m->start, state, sizeof(float) * (size_t)m->start_n);
    const float *s = m->start;
    for (int i = 0; i < m->n_blocks; i++) {
        TcBlock *b = &m->blocks[i];
        b->pos = b->history;
        for (int r = 0; r < b->in; r++) {
            memset(b->buf + (size_t)r * b->length, 0, sizeof(float) * (size_t)b->length);
            memcpy(b->buf + (size_t)r * b->length, s, sizeof(float) * (size_t)b->history);
            s += b->history;
        }
    }
    if (!m->tfilm) return;
    m->pos = (int)s[0];
    s++;
    for (int i = 0; i < m->n_blocks; i++, s += m->c) /* a block's first sample ignores the peak */
        for (int r = 0; r < m->c; r++) m->blocks[i].peak[r] = m->pos ? s[r] : 0.0f;
    for (int i = 0; i < m->n_blocks; i++, s += m->tfilm_hidden) {
        memcpy(m->blocks[i].hidden, s, sizeof(float) * (size_t)m->tfilm_hidden);
        tc_modulation(m, &m->blocks[i]);
    }
}

void tcn_reset(void *handle) { tcn_set_start(handle, ((Tcn *)handle)->start); }

/* Room for np more samples at b->pos: when there is none, the last `history` samples move
 * to the front. */
static void tc_room(TcBlock *b, int np) {
    if (b->pos + np <= b->length) return;
    for (int r = 0; r < b->in; r++) {
        float *row = b->buf + (size_t)r * b->length;
        memmove(row, row + b->pos - b->history, sizeof(float) * (size_t)b->history);
    }
    b->pos = b->history;
}

/* shape: gated, the activation's id, channels, blocks, knobs, the knob MLP's hidden units,
 * the TFiLM block (0: none), the TFiLM GRU's units, then each block's kernel and dilation.
 * weights: per block the conv's weight (out x in * kernel) and bias, a GCN block's mix (c x
 * c), the gain (c), the TFiLM GRU's W_ih, W_hh, b_ih, b_hh and modulation W, b; the knob
 * MLP's W1, b1, W2, b2; the head's weights and bias; the activation's parameters (ACT_PARAMS
 * + c). The state after silence follows through tcn_set_start. */
void *tcn_create(const int *shape, const float *weights, long n_weights) {
    const int gated = shape[0], act = shape[1], c = shape[2], L = shape[3], K = shape[4], FH = shape[5];
    const int TB = shape[6], H = shape[7];
    if (c < 1 || L < 1 || K < 0 || (K > 0 && FH < 1) || TB < 0 || (TB > 0 && H < 1) || act < 0 || act >= N_ACT)
        return NULL;
    for (int i = 0; i < L; i++)
        if (shape[8 + 2 * i] < 1 || shape[9 + 2 * i] < 1) return NULL;
    Tcn *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->gated = gated;
    m->act = act;
    m->c = c;
    m->n_blocks = L;
    m->knobs = K;
    m->film_hidden = FH;
    m->tfilm = TB;
    m->tfilm_hidden = H;
    m->blocks = calloc((size_t)L, sizeof *m->blocks);
    long at = 0, start_n = TB ? 1 + (long)L * (c + H) : 0;
    int ok = m->blocks != NULL, max_src = c * L + K + FH;
    for (int i = 0; ok && i < L; i++) {
        TcBlock *b = &m->blocks[i];
        b->in = i == 0 ? 1 : c;
        b->out = gated ? 2 * c : c;
        b->kernel = shape[8 + 2 * i];
        b->dilation = shape[9 + 2 * i];
        b->history = (b->kernel - 1) * b->dilation;
        b->length = b->history + 2 * TC_CHUNK;
        start_n += (long)b->in * b->history;
        if (b->in * b->kernel > max_src) max_src = b->in * b->kernel;
        const long kw = (long)b->in * b->kernel;
        if (at + b->out * kw + b->out > n_weights) { ok = 0; break; }
        ok = dense_init(&b->conv, weights + at, weights + at + b->out * kw, b->out, (int)kw);
        at += b->out * kw + b->out;
        b->has_mix = gated && i < L - 1;
        if (ok && b->has_mix) {
            if (at + (long)c * c > n_weights) { ok = 0; break; }
            ok = dense_init(&b->mix, weights + at, NULL, c, c);
            at += (long)c * c;
        }
        const int has_gain = !gated || (i == 0 && L > 1);
        if (ok && has_gain) ok = at + c <= n_weights && (b->gain = take_floats(weights, &at, c)) != NULL;
        if (ok && TB) {
            const long need = 3L * H * c + 3L * H * H + 6L * H + 2L * c * H + 2L * c;
            ok = at + need <= n_weights;
            if (ok) {
                b->w_ih = take_floats(weights, &at, 3L * H * c);
                b->w_hh_t = malloc(sizeof(float) * (size_t)3 * H * H);
                if (b->w_hh_t)
                    for (int j = 0; j < 3 * H; j++)
                        for (int k = 0; k < H; k++) b->w_hh_t[(size_t)k * 3 * H + j] = weights[at + (long)j * H + k];
                at += 3L * H * H;
                b->b_ih = take_floats(weights, &at, 3L * H);
                b->b_hh = take_floats(weights, &at, 3L * H);
                b->mod_w = take_floats(weights, &at, 2L * c * H);
                b->mod_b = take_floats(weights, &at, 2L * c);
                b->peak = calloc((size_t)c, sizeof(float));
                b->hidden = calloc((size_t)H, sizeof(float));
                b->scale = calloc((size_t)c, sizeof(float));
                b->shift = calloc((size_t)c, sizeof(float));
                b->gates = calloc((size_t)3 * H, sizeof(float));
                ok = b->w_ih && b->w_hh_t && b->b_ih && b->b_hh && b->mod_w && b->mod_b && b->peak &&
                     b->hidden && b->scale && b->shift && b->gates;
            }
        }
        if (ok) ok = (b->buf = calloc((size_t)b->in * b->length, sizeof(float))) != NULL;
    }
    if (ok && K) {
        const long need = (long)FH * K + FH + 2L * c * L * FH + 2L * c * L;
        ok = at + need <= n_weights && dense_init(&m->film1, weights + at, weights + at + (long)FH * K, FH, K);
        at += (long)FH * K + FH;
        ok = ok && dense_init(&m->film2, weights + at, weights + at + 2L * c * L * FH, 2 * c * L, FH);
        at += 2L * c * L * FH + 2L * c * L;
    }
    const int mixed = gated ? c * L : c;
    if (ok) {
        ok = at + mixed + 1 <= n_weights && dense_init(&m->head, weights + at, weights + at + mixed, 1, mixed);
        at += mixed + 1;
    }
    if (ok) {
        ok = at + ACT_PARAMS + c == n_weights && (m->act_p = take_floats(weights, &at, ACT_PARAMS + c)) != NULL;
    }
    if (ok) {
        const size_t S = TC_CHUNK;
        m->z = calloc((size_t)2 * c * S, sizeof(float));
        m->a = calloc((size_t)c * L * S, sizeof(float));
        m->kin = calloc((size_t)(K > 0 ? K : 1) * S, sizeof(float));
        m->fh = calloc((size_t)(FH > 0 ? FH : 1) * S, sizeof(float));
        m->films = calloc((size_t)(K > 0 ? 2 * c * L : 1) * S, sizeof(float));
        m->y = calloc(S, sizeof(float));
        m->src = calloc((size_t)max_src, sizeof(float *));
        m->start_n = start_n;
        m->start = calloc((size_t)(start_n > 0 ? start_n : 1), sizeof(float));
        ok = m->z && m->a && m->kin && m->fh && m->films && m->y && m->src && m->start;
    }
    if (!ok) {
        tcn_destroy(m);
        return NULL;
    }
    tcn_set_start(m, m->start); /* zeros until the caller sets the state after silence */
    return m;
}

/* TFiLM over one block's activations a (c rows of stride S, n samples) from grid position p0 */
static void tc_tfilm(Tcn *m, TcBlock *b, float *a, int n) {
    const int c = m->c, TB = m->tfilm;
    int p = m->pos, t = 0;
    while (t < n) {
        const int seg = n - t < TB - p ? n - t : TB - p;
        for (int r = 0; r < c; r++) {
            float *row = a + (size_t)r * TC_CHUNK + t, peak = b->peak[r];
            const float s = b->scale[r], sh = b->shift[r];
            for (int u = 0; u < seg; u++) {
                const float v = row[u], av = fabsf(v);
                peak = av > peak ? av : peak;
                row[u] = sh + v * s;
            }
            b->peak[r] = peak;
        }
        t += seg;
        p += seg;
        if (p == TB) {
            tc_gru_step(m, b);
            for (int r = 0; r < c; r++) b->peak[r] = 0.0f;
            p = 0;
        }
    }
}

static void tc_chunk(Tcn *m, const float *in, int stride, float *out, int n) {
    const int c = m->c, L = m->n_blocks, np = round_up(n, TILE);
    const size_t S = TC_CHUNK;
    TcBlock *first = &m->blocks[0];
    tc_room(first, np);
    memcpy(first->buf + first->pos, in, sizeof(float) * (size_t)n);
    if (m->knobs) {
        for (int k = 0; k < m->knobs; k++) {
            memcpy(m->kin + k * S, in + (size_t)(1 + k) * stride, sizeof(float) * (size_t)n);
            m->src[k] = m->kin + k * S;
        }
        dense(&m->film1, m->src, NULL, 0, m->fh, (int)S, np);
        for (int r = 0; r < m->film_hidden; r++)
            for (int t = 0; t < np; t += TILE) vstore(m->fh + r * S + t, vtanh(vload(m->fh + r * S + t)));
        for (int r = 0; r < m->film_hidden; r++) m->src[r] = m->fh + r * S;
        dense(&m->film2, m->src, NULL, 0, m->films, (int)S, np);
    }
    for (int i = 0; i < L; i++) {
        TcBlock *b = &m->blocks[i];
        for (int r = 0; r < b->in; r++)
            for (int j = 0; j < b->kernel; j++)
                m->src[r * b->kernel + j] = b->buf + (size_t)r * b->length + b->pos - (b->kernel - 1 - j) * b->dilation;
        dense(&b->conv, m->src, NULL, 0, m->z, (int)S, np);
        float *a = m->a + (m->gated ? (size_t)i * c * S : 0);
        for (int r = 0; r < c; r++)
            for (int t = 0; t < np; t += TILE) {
                vec v;
                if (m->gated) {
                    const vec f = vtanh(vload(m->z + r * S + t)), g = vtanh(vload(m->z + (c + r) * S + t));
                    v = f + f * g;
                } else {
                    v = activation_p(m->act, vload(m->z + r * S + t), m->act_p, r);
                }
                if (m->knobs)
                    v = vload(m->films + ((size_t)2 * i + 1) * c * S + r * S + t) +
                        v * vload(m->films + (size_t)2 * i * c * S + r * S + t);
                vstore(a + r * S + t, v);
            }
        if (m->tfilm) tc_tfilm(m, b, a, n);
        const float *x = b->buf + b->pos; /* this block's input, row r at x + r * length */
        if (i + 1 < L) {
            TcBlock *next = &m->blocks[i + 1];
            tc_room(next, np);
            float *dst = next->buf + next->pos;
            if (b->has_mix) {
                for (int r = 0; r < c; r++) m->src[r] = a + r * S;
                dense(&b->mix, m->src, NULL, 0, dst, next->length, np);
            }
            for (int r = 0; r < c; r++) {
                const float *xr = x + (size_t)(b->in == 1 ? 0 : r) * b->length, g = b->gain ? b->gain[r] : 1.0f;
                float *d = dst + (size_t)r * next->length;
                const float *ar = a + r * S;
                if (b->has_mix)
                    for (int t = 0; t < n; t++) d[t] += g * xr[t];
                else
                    for (int t = 0; t < n; t++) d[t] = ar[t] + g * xr[t];
            }
        } else if (!m->gated) { /* the last TCN block's output, for the head */
            for (int r = 0; r < c; r++) {
                const float *xr = x + (size_t)(b->in == 1 ? 0 : r) * b->length, g = b->gain[r];
                float *ar = a + r * S;
                for (int t = 0; t < n; t++) ar[t] = ar[t] + g * xr[t];
            }
        }
        b->pos += n;
    }
    if (m->tfilm) m->pos = (m->pos + n) % m->tfilm;
    const int rows = m->gated ? c * L : c;
    for (int r = 0; r < rows; r++) m->src[r] = m->a + r * S;
    dense(&m->head, m->src, NULL, 0, m->y, (int)S, np);
    memcpy(out, m->y, sizeof(float) * (size_t)n);
}

/* in: the audio, then each knob, planar (channel c at in + c * stride); out: n samples. */
void tcn_process(void *handle, const float *in, int stride, float *out, int n) {
    for (int t = 0; t < n; t += TC_CHUNK) {
        const int k = n - t < TC_CHUNK ? n - t : TC_CHUNK;
        tc_chunk((Tcn *)handle, in + t, stride, out + t, k);
    }
}

static inline float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }

/* ------------------------------------------------------------ bindings -- */

/* A block call with its buffers fixed, for callers that pay per argument (through ctypes
 * each one costs about 0.1 us to convert, a few percent of a 32-sample LSTM block):
 * bind_block once, then run_block(binding, n) per block. */
typedef struct {
    void (*process)(void *, const float *, int, float *, int);
    void *handle;
    const float *in;
    int stride;
    float *out;
} Binding;

typedef void (*Process)(void *, const float *, int, float *, int);

/* kind: 0 for a WaveNet handle, 1 for an LSTM, 2 for a GRU, 3 for an S4D, 4 for a gray box,
 * 5 for a TCN. */
static Process process_of(int kind) {
    static const Process table[] = {wavenet_process, lstm_process, gru_process, s4d_process, graybox_process,
                                    tcn_process};
    return table[kind];
}

/* kind as for process_of. NULL when out of memory. */
void *bind_block(int kind, void *handle, const float *in, int stride, float *out) {
    Binding *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->process = process_of(kind);
    b->handle = handle;
    b->in = in;
    b->stride = stride;
    b->out = out;
    return b;
}

void run_block(void *binding, int n) {
    const Binding *b = (const Binding *)binding;
    b->process(b->handle, b->in, b->stride, b->out, n);
}

void unbind_block(void *binding) { free(binding); }

/* Seconds of CLOCK_MONOTONIC that streaming the planar input (channel c at in + c * total)
 * through a handle takes, `block` samples a call (the last partial block left out), outputs
 * to out + t: the loop a C host runs, and what NAM's engine `bench` times around its
 * process(), so that the kernel and the engine are compared like for like, without the
 * Python call each block costs a Python host. */
double time_blocks(int kind, void *handle, const float *in, long total, int block, float *out) {
    const Process process = process_of(kind);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long t = 0; t + block <= total; t += block) process(handle, in + t, (int)total, out + t, block);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

/* ---- GRU recurrence, forward and backward, for training and offline rendering ----
 *
 * PyTorch's GRU with its gate order r, z, n. The input projections of every step,
 * gi = W_ih x + b_ih (batch, T, 3H), are one matrix product left to the caller, as are
 * the weight gradients; what cannot be batched over time, the recurrence, runs here:
 *   gh = W_hh h + b_hh;  r = s(gi_r + gh_r);  z = s(gi_z + gh_z);
 *   n = tanh(gi_n + r * gh_n);  h' = (1 - z) n + z h.
 * wt is W_hh transposed, (H, 3H), so the product streams over contiguous gate rows.
 * save (batch, T, 4H), when not NULL, keeps r, z, n and gh_n of every step for the backward. */
void gru_forward(int batch, long T, int H, const float *gi, const float *h0, const float *wt,
                 const float *bias, float *hs, float *save) {
    float gh[3 * H];
    for (int b = 0; b < batch; b++) {
        const float *h = h0 + (long)b * H;
        for (long t = 0; t < T; t++) {
            const long at = (long)b * T + t;
            const float *g = gi + at * 3 * H;
            float *out = hs + at * H;
            for (int j = 0; j < 3 * H; j++) gh[j] = bias[j];
            for (int k = 0; k < H; k++) {
                const float hk = h[k], *w = wt + (long)k * 3 * H;
                for (int j = 0; j < 3 * H; j++) gh[j] += w[j] * hk;
            }
            float *s = save ? save + at * 4 * H : NULL;
            for (int k = 0; k < H; k++) {
                const float r = sigmoidf_(g[k] + gh[k]);
                const float z = sigmoidf_(g[H + k] + gh[H + k]);
                const float n = tanhf(g[2 * H + k] + r * gh[2 * H + k]);
                out[k] = n + z * (h[k] - n);
                if (s) {
                    s[k] = r;
                    s[H + k] = z;
                    s[2 * H + k] = n;
                    s[3 * H + k] = gh[2 * H + k];
                }
            }
            h = out;
        }
    }
}

/* Back through the recurrence from dhs (batch, T, H), the loss gradient at every output
 * (the final state's gradient included). w is W_hh as stored, (3H, H). Writes dgi (batch,
 * T, 3H), the gradient at gi; dgh (batch, T, 3H), at gh (W_hh's and b_hh's gradients are
 * its products with the previous states, left to the caller); dh0 (batch, H). */
void gru_backward(int batch, long T, int H, const float *w, const float *h0, const float *hs,
                  const float *save, const float *dhs, float *dgi, float *dgh, float *dh0) {
    float dh[H], next[H];
    for (int b = 0; b < batch; b++) {
        for (int k = 0; k < H; k++) dh[k] = 0.0f;
        for (long t = T - 1; t >= 0; t--) {
            const long at = (long)b * T + t;
            const float *prev = t > 0 ? hs + (at - 1) * H : h0 + (long)b * H;
            const float *s = save + at * 4 * H, *d = dhs + at * H;
            float *gi_ = dgi + at * 3 * H, *gh_ = dgh + at * 3 * H;
            for (int k = 0; k < H; k++) {
                const float r = s[k], z = s[H + k], n = s[2 * H + k], ghn = s[3 * H + k];
                const float g = dh[k] + d[k];
                const float dn = g * (1.0f - z) * (1.0f - n * n);
                const float dz = g * (prev[k] - n) * z * (1.0f - z);
                const float dr = dn * ghn * r * (1.0f - r);
                gi_[k] = gh_[k] = dr;
                gi_[H + k] = gh_[H + k] = dz;
                gi_[2 * H + k] = dn;
                gh_[2 * H + k] = dn * r;
                next[k] = g * z;
            }
            for (int j = 0; j < 3 * H; j++) {
                const float gj = gh_[j], *row = w + (long)j * H;
                for (int k = 0; k < H; k++) next[k] += row[k] * gj;
            }
            for (int k = 0; k < H; k++) dh[k] = next[k];
        }
        for (int k = 0; k < H; k++) dh0[(long)b * H + k] = dh[k];
    }
}

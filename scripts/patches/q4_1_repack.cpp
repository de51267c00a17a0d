// ---- puyu_apps patch: repacked Q4_1 weights for batched CPU decode (8 rows interleaved) -----------------------
// Stock llama.cpp has no repacked (gemm) path for Q4_1 on x86: every (row, column) dot product unpacks the weights
// again, so a batch of 8 sequences costs nearly 8 single decodes. Here Q4_1 weights are repacked 8 rows at a time;
// one pass over a block's weights serves 1 (gemv) or 4 (gemm) activation rows, with exact Q4_1 arithmetic:
// sum_i (d q_i + m) x_i = d * sum_i q_i x_i + m * sum_i x_i (q_i in 0..15 unsigned, x quantized to Q8_0).
// Opt-in for now: GGML_Q4_1_REPACK=1 in the environment (read once per process) turns it on; otherwise the
// stock kernels run (scripts/patches/README.md says why).
// Written for puyu_apps (scripts/patches/README.md); MIT like the file it is inserted into.

struct puyu_block_q4_1x8 {
    ggml_half d[8];     // scales of the 8 rows' blocks
    ggml_half m[8];     // their mins
    uint8_t   qs[128];  // chunk t (32 bytes): byte 4j+u = q_j[8t+u] | q_j[8t+4+u] << 4
};
static_assert(sizeof(puyu_block_q4_1x8) == 8 * 2 * sizeof(ggml_half) + 128, "wrong puyu_block_q4_1x8 size");

// read once per process: a weight repacked at load must be computed by the repacked kernels ever after
static bool puyu_q4_1_repack_enabled() {
    static const bool enabled = [] {
        const char * v = getenv("GGML_Q4_1_REPACK");
        return v != nullptr && strcmp(v, "1") == 0;
    }();
    return enabled;
}

// found in the built library by puyu_apps (engine/llamacpp.py) and by scripts/setup.sh: bump with every change
extern "C" __attribute__((used)) const char puyu_q4_1_repack_id[] = "puyu_apps:q4_1_repack:2";

static int puyu_repack_q4_1_8x8(struct ggml_tensor * t, const void * GGML_RESTRICT data, size_t data_size) {
    GGML_ASSERT(t->type == GGML_TYPE_Q4_1);
    const int64_t nrow = ggml_nrows(t);
    const int64_t nblocks = t->ne[0] / QK4_1;
    GGML_ASSERT(data_size == (size_t) (nrow * nblocks) * sizeof(block_q4_1));
    if (t->ne[1] % 8 != 0 || t->ne[0] % QK4_1 != 0) {
        return -1;
    }
    const block_q4_1 * src = (const block_q4_1 *) data;
    puyu_block_q4_1x8 * dst = (puyu_block_q4_1x8 *) t->data;
    uint8_t q[8][QK4_1];
    for (int64_t r0 = 0; r0 < nrow; r0 += 8) {
        for (int64_t b = 0; b < nblocks; b++) {
            puyu_block_q4_1x8 out;
            for (int j = 0; j < 8; j++) {
                const block_q4_1 & in = src[(r0 + j) * nblocks + b];
                memcpy(&out.d[j], (const char *) &in, sizeof(ggml_half));  // d, then m (ggml-common.h)
                memcpy(&out.m[j], (const char *) &in + sizeof(ggml_half), sizeof(ggml_half));
                for (int i = 0; i < QK4_1 / 2; i++) {
                    q[j][i] = in.qs[i] & 0x0F;
                    q[j][i + QK4_1 / 2] = in.qs[i] >> 4;
                }
            }
            for (int c = 0; c < 4; c++) {
                for (int j = 0; j < 8; j++) {
                    for (int u = 0; u < 4; u++) {
                        out.qs[32 * c + 4 * j + u] = (uint8_t) (q[j][8 * c + u] | (q[j][8 * c + 4 + u] << 4));
                    }
                }
            }
            *dst++ = out;
        }
    }
    return 0;
}

// unpacked weight q_j[k] of a repacked block (reference code and tests)
static inline int puyu_q4_1x8_get(const puyu_block_q4_1x8 & b, int j, int k) {
    const int c = k / 8, u = k % 8;
    const uint8_t byte = b.qs[32 * c + 4 * j + (u % 4)];
    return u < 4 ? (byte & 0x0F) : (byte >> 4);
}

// scalar reference: s[r * bs + col] for nr rows of plain block_q8_0 activations (gemv layout) or, with x4, of
// block_q8_0x4 groups of 4 rows (gemm layout)
static void puyu_q4_1_8x8_generic(int n, float * GGML_RESTRICT s, size_t bs, const void * GGML_RESTRICT vx,
                                  const void * GGML_RESTRICT vy, int nr, int nc, bool x4) {
    const int nb = n / QK8_0;
    const puyu_block_q4_1x8 * B = (const puyu_block_q4_1x8 *) vx;
    for (int r = 0; r < nr; r++) {
        for (int x = 0; x < nc / 8; x++) {
            for (int j = 0; j < 8; j++) {
                float acc = 0.0f;
                for (int b = 0; b < nb; b++) {
                    const puyu_block_q4_1x8 & w = B[x * nb + b];
                    float da;
                    int qa[QK8_0];
                    if (x4) {
                        const block_q8_0x4 & a = ((const block_q8_0x4 *) vy)[(r / 4) * nb + b];
                        da = GGML_CPU_FP16_TO_FP32(a.d[r % 4]);
                        for (int k = 0; k < QK8_0; k++) {
                            qa[k] = a.qs[32 * (k / 8) + 8 * (r % 4) + k % 8];
                        }
                    } else {
                        const block_q8_0 & a = ((const block_q8_0 *) vy)[r * nb + b];
                        da = GGML_CPU_FP16_TO_FP32(a.d);
                        for (int k = 0; k < QK8_0; k++) {
                            qa[k] = a.qs[k];
                        }
                    }
                    int dot = 0, sum = 0;
                    for (int k = 0; k < QK8_0; k++) {
                        dot += puyu_q4_1x8_get(w, j, k) * qa[k];
                        sum += qa[k];
                    }
                    acc += GGML_CPU_FP16_TO_FP32(w.d[j]) * da * (float) dot + GGML_CPU_FP16_TO_FP32(w.m[j]) * da * (float) sum;
                }
                s[r * bs + x * 8 + j] = acc;
            }
        }
    }
}

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
// one block of 8 repacked rows against the 32 activations at qa (chunk c of 8 values at qa + c * stride):
// the 8 integer dot products sum_k q_j[k] * qa[k] (|.| <= 8 * 3810 fits the int16 pair sums)
static inline __m256i puyu_q4_1x8_dot(const __m256i w[4], const int8_t * qa, int stride) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i p = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        int32_t lo4, hi4;
        memcpy(&lo4, qa + c * stride, 4);
        memcpy(&hi4, qa + c * stride + 4, 4);
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(w[c], m4), _mm256_set1_epi32(lo4)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w[c], 4), m4), _mm256_set1_epi32(hi4)));
    }
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// R activation rows against nc repacked columns: row r's block b starts at qa[r] + b * bstride (its 32 values in
// 4 chunks of 8, chunk c at + c * cstride), with scale da[b * R + r] and scaled sum sa[b * R + r]; one pass over
// each block's weights serves all R rows
template <int R>
static void puyu_q4_1x8_rows(int nb, float * GGML_RESTRICT s, size_t bs, const puyu_block_q4_1x8 * B, int nc,
                             const int8_t * const * qa, size_t bstride, int cstride, const float * da, const float * sa) {
    for (int x = 0; x < nc / 8; x++) {
        const puyu_block_q4_1x8 * w = B + (size_t) x * nb;
        __m256 acc[R];
        for (int r = 0; r < R; r++) {
            acc[r] = _mm256_setzero_ps();
        }
        for (int b = 0; b < nb; b++) {
            const __m256i wv[4] = {
                _mm256_loadu_si256((const __m256i *) w[b].qs), _mm256_loadu_si256((const __m256i *) w[b].qs + 1),
                _mm256_loadu_si256((const __m256i *) w[b].qs + 2), _mm256_loadu_si256((const __m256i *) w[b].qs + 3)};
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) w[b].d));
            const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) w[b].m));
            for (int r = 0; r < R; r++) {
                const __m256i dot = puyu_q4_1x8_dot(wv, qa[r] + b * bstride, cstride);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(da[b * R + r])), acc[r]);
                acc[r] = _mm256_fmadd_ps(mw, _mm256_set1_ps(sa[b * R + r]), acc[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            _mm256_storeu_ps(s + (size_t) r * bs + x * 8, acc[r]);
        }
    }
}

static inline int puyu_sum32(const int8_t * q, int stride) {
    int sum = 0;
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 8; i++) {
            sum += q[c * stride + i];
        }
    }
    return sum;
}
#endif

// nr rows of plain block_q8_0 activations (one after another, n / 32 blocks each); output row r at s + r * bs
static void puyu_gemv_q4_1_8x8_q8_0(int n, float * GGML_RESTRICT s, size_t bs, const void * GGML_RESTRICT vx,
                                    const void * GGML_RESTRICT vy, int nr, int nc) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
    const int nb = n / QK8_0;
    const puyu_block_q4_1x8 * B = (const puyu_block_q4_1x8 *) vx;
    std::vector<float> sa(4 * (size_t) nb), da(4 * (size_t) nb);
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int R = nr - r0 < 4 ? nr - r0 : 4;
        const int8_t * qa[4];
        for (int r = 0; r < R; r++) {
            const block_q8_0 * a = (const block_q8_0 *) vy + (size_t) (r0 + r) * nb;
            qa[r] = a[0].qs;
            for (int b = 0; b < nb; b++) {
                da[b * R + r] = GGML_CPU_FP16_TO_FP32(a[b].d);
                sa[b * R + r] = da[b * R + r] * (float) puyu_sum32(a[b].qs, 8);
            }
        }
        float * out = s + (size_t) r0 * bs;
        switch (R) {
            case 1: puyu_q4_1x8_rows<1>(nb, out, bs, B, nc, qa, sizeof(block_q8_0), 8, da.data(), sa.data()); break;
            case 2: puyu_q4_1x8_rows<2>(nb, out, bs, B, nc, qa, sizeof(block_q8_0), 8, da.data(), sa.data()); break;
            case 3: puyu_q4_1x8_rows<3>(nb, out, bs, B, nc, qa, sizeof(block_q8_0), 8, da.data(), sa.data()); break;
            default: puyu_q4_1x8_rows<4>(nb, out, bs, B, nc, qa, sizeof(block_q8_0), 8, da.data(), sa.data()); break;
        }
    }
#else
    puyu_q4_1_8x8_generic(n, s, bs, vx, vy, nr, nc, false);
#endif
}

// nr rows (a multiple of 4) of block_q8_0x4 activations (4 rows interleaved by 8 values)
static void puyu_gemm_q4_1_8x8_q8_0(int n, float * GGML_RESTRICT s, size_t bs, const void * GGML_RESTRICT vx,
                                    const void * GGML_RESTRICT vy, int nr, int nc) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
    const int nb = n / QK8_0;
    const puyu_block_q4_1x8 * B = (const puyu_block_q4_1x8 *) vx;
    std::vector<float> sa(4 * (size_t) nb), da(4 * (size_t) nb);
    for (int y = 0; y < nr / 4; y++) {
        const block_q8_0x4 * a = (const block_q8_0x4 *) vy + (size_t) y * nb;
        const int8_t * qa[4];
        for (int r = 0; r < 4; r++) {
            qa[r] = a[0].qs + 8 * r;
            for (int b = 0; b < nb; b++) {
                da[b * 4 + r] = GGML_CPU_FP16_TO_FP32(a[b].d[r]);
                sa[b * 4 + r] = da[b * 4 + r] * (float) puyu_sum32(a[b].qs + 8 * r, 32);
            }
        }
        puyu_q4_1x8_rows<4>(nb, s + (size_t) (4 * y) * bs, bs, B, nc, qa, sizeof(block_q8_0x4), 32, da.data(), sa.data());
    }
#else
    puyu_q4_1_8x8_generic(n, s, bs, vx, vy, nr, nc, true);
#endif
}

namespace ggml::cpu::repack {
template <> int repack<block_q4_1, 8, 8>(struct ggml_tensor * t, const void * data, size_t data_size) {
    return puyu_repack_q4_1_8x8(t, data, data_size);
}
template <> void gemv<block_q4_1, 8, 8, GGML_TYPE_Q8_0>(int n, float * s, size_t bs, const void * vx, const void * vy, int nr, int nc) {
    puyu_gemv_q4_1_8x8_q8_0(n, s, bs, vx, vy, nr, nc);
}
template <> void gemm<block_q4_1, 8, 8, GGML_TYPE_Q8_0>(int n, float * s, size_t bs, const void * vx, const void * vy, int nr, int nc) {
    puyu_gemm_q4_1_8x8_q8_0(n, s, bs, vx, vy, nr, nc);
}

// as the class template's own, except that the rows left after the groups of 4 (1 to 3) go to the gemv in one
// call, so that they too share each pass over the weights
template <> void tensor_traits<block_q4_1, 8, 8, GGML_TYPE_Q8_0>::forward_mul_mat_one_chunk(
        ggml_compute_params * params, ggml_tensor * op, int64_t src0_start, int64_t src0_end, int64_t src1_start,
        int64_t src1_end) {
    const ggml_tensor * src0 = op->src[0];
    const ggml_tensor * src1 = op->src[1];
    ggml_tensor *       dst  = op;

    GGML_TENSOR_BINARY_OP_LOCALS

    const size_t src1_col_stride = ggml_row_size(GGML_TYPE_Q8_0, ne10);
    GGML_ASSERT(ne03 == 1 && ne13 == 1);
    GGML_ASSERT(ne12 % ne02 == 0);
    const int64_t r2 = ne12 / ne02;
    const int64_t i12 = src1_start / ne1;
    const int64_t i11 = src1_start - i12 * ne1;
    const int64_t i02 = i12 / r2;

    const char * src0_ptr = (const char *) src0->data + i02 * nb02;
    const char * src1_ptr = (const char *) params->wdata + (i11 + i12 * ne11) * src1_col_stride;
    char *       dst_ptr  = (char *) dst->data + (i11 * nb1 + i12 * nb2);

    const int64_t nrows = src1_end - src1_start;
    const int64_t ncols = src0_end - src0_start;
    const int64_t nfull = nrows - nrows % 4;
    GGML_ASSERT(src1_ptr + src1_col_stride * nrows <= (const char *) params->wdata + params->wsize);

    if (nfull > 0) {
        puyu_gemm_q4_1_8x8_q8_0(ne00, (float *) dst_ptr + src0_start, nb1 / nb0, src0_ptr + src0_start * nb01,
                                src1_ptr, nfull, ncols);
    }
    if (nrows > nfull) {
        puyu_gemv_q4_1_8x8_q8_0(ne00, (float *) (dst_ptr + nfull * nb1) + src0_start, nb1 / nb0,
                                src0_ptr + src0_start * nb01, src1_ptr + src1_col_stride * nfull, nrows - nfull, ncols);
    }
}
}  // namespace ggml::cpu::repack
// ---- end of the puyu_apps patch block ------------------------------------------------------------------------


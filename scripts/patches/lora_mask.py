"""The masked-LoRA patch to llama.cpp: one LoRA adapter whose rows are switched on per sequence.

llama.cpp applies LoRA adapters per context: every token of a decode gets the same adapters, so requests on
different adapters cannot share a decode. This patch lets one *combined* adapter (the A matrices of several
adapters stacked, their B matrices side by side; written by ``puyu_apps.engine.lora_gguf.combine``) be applied
with a per-token mask on its rank rows: ``W x + B (m_s * (A x))``, where ``m_s`` is the row mask of the token's
sequence (1 on the rows of that sequence's adapters, 0 elsewhere; all 0 for the base model). Requests on any mix
of adapters then decode in one batch, with one pass over the base weights. See README.md here.

Each edit is an (file, anchor, text, where) insertion; ``where`` is "before" or "after" the anchor, which must occur
exactly once. The C++ lives in the strings below.
"""

from __future__ import annotations

from pathlib import Path

MARK = "puyu_apps patch: masked LoRA"
#: the id the patched libllama returns from puyu_lora_mask_id() (bump with every change of this patch)
LORA_MASK_ID = "puyu_apps:lora_mask:2"

ADAPTER_H = """
    // puyu_apps patch: masked LoRA. With puyu_mask_rank > 0 every adapted weight has that rank, and the rank rows
    // of token t are multiplied by the row mask of t's sequence (no row set: all 0, the base model).
    int32_t puyu_mask_rank = 0;
    std::vector<std::vector<float>> puyu_seq_mask;

    // Fused masked LoRA: own copies of every adapted weight (A as loaded, B transposed), applied by two custom ops
    // that compute, for each token, only the rank rows its mask switches on (puyu_lora_mask_fused).
    struct puyu_fused_weight {
        const llama_adapter_lora * owner = nullptr;
        int64_t n_in = 0;
        int64_t n_out = 0;
        int64_t rank = 0;
        std::vector<float> a;  // [rank][n_in]
        std::vector<float> bt; // [rank][n_out]
    };
    std::unordered_map<const ggml_tensor *, puyu_fused_weight> puyu_fused; // key: the adapter's A tensor

    const float * puyu_seq_row(llama_seq_id s) const {
        if (s < 0 || (size_t) s >= puyu_seq_mask.size() || puyu_seq_mask[s].empty()) {
            return nullptr;
        }
        return puyu_seq_mask[s].data();
    }
"""

ADAPTER_CPP = """

// puyu_apps patch: masked LoRA (C API, called by puyu_apps through ctypes)
extern "C" LLAMA_API const char * puyu_lora_mask_id(void) {
    return "%(id)s";
}

// Turn on masked mode for `adapter` (before a context uses it): every adapted weight must have rank `n_rank`.
// 0: ok; -1: bad arguments; -2: a weight of another rank.
extern "C" LLAMA_API int32_t puyu_lora_mask_enable(struct llama_adapter_lora * adapter, int32_t n_rank) {
    if (adapter == nullptr || n_rank <= 0) {
        return -1;
    }
    for (const auto & it : adapter->ab_map) {
        if (it.second.a->ne[1] != n_rank || it.second.b->ne[0] != n_rank) {
            return -2;
        }
    }
    adapter->puyu_mask_rank = n_rank;
    return 0;
}

static std::vector<float> puyu_tensor_f32(const ggml_tensor * t) {
    std::vector<float> out(ggml_nelements(t));
    if (t->type == GGML_TYPE_F32) {
        ggml_backend_tensor_get(t, out.data(), 0, ggml_nbytes(t));
    } else {
        std::vector<ggml_fp16_t> tmp(ggml_nelements(t));
        ggml_backend_tensor_get(t, tmp.data(), 0, ggml_nbytes(t));
        ggml_fp16_to_fp32_row(tmp.data(), out.data(), ggml_nelements(t));
    }
    return out;
}

// Fused mode of a masked adapter (on: 1, off: 0): each token's LoRA product then computes only the rank rows
// its mask switches on, from copies of the weights made here (B transposed). Without it, masked decodes multiply
// every rank row and mask the result. 0: ok; -1: not in masked mode; -2: a weight that is not F32 or F16.
extern "C" LLAMA_API int32_t puyu_lora_mask_fused(struct llama_adapter_lora * adapter, int32_t on) {
    if (adapter == nullptr || adapter->puyu_mask_rank <= 0) {
        return -1;
    }
    adapter->puyu_fused.clear();
    if (!on) {
        return 0;
    }
    for (const auto & it : adapter->ab_map) {
        const ggml_tensor * a = it.second.a;
        const ggml_tensor * b = it.second.b;
        for (const ggml_tensor * t : {a, b}) {
            if ((t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) || ggml_n_dims(t) != 2) {
                adapter->puyu_fused.clear();
                return -2;
            }
        }
        llama_adapter_lora::puyu_fused_weight fw;
        fw.owner = adapter;
        fw.n_in = a->ne[0];
        fw.rank = a->ne[1];
        fw.n_out = b->ne[1];
        fw.a = puyu_tensor_f32(a);
        const std::vector<float> bv = puyu_tensor_f32(b); // [n_out][rank]
        fw.bt.resize(bv.size());
        for (int64_t o = 0; o < fw.n_out; ++o) {
            for (int64_t r = 0; r < fw.rank; ++r) {
                fw.bt[r*fw.n_out + o] = bv[o*fw.rank + r];
            }
        }
        adapter->puyu_fused.emplace(a, std::move(fw));
    }
    return 0;
}

// Set the row mask (puyu_mask_rank floats) of sequence `seq`; `row` NULL clears it (the base model).
// 0: ok; -1: not in masked mode or a negative sequence id.
extern "C" LLAMA_API int32_t puyu_lora_mask_set_seq(struct llama_adapter_lora * adapter, llama_seq_id seq, const float * row) {
    if (adapter == nullptr || adapter->puyu_mask_rank <= 0 || seq < 0) {
        return -1;
    }
    if ((size_t) seq >= adapter->puyu_seq_mask.size()) {
        adapter->puyu_seq_mask.resize(seq + 1);
    }
    auto & v = adapter->puyu_seq_mask[seq];
    if (row == nullptr) {
        v.clear();
    } else {
        v.assign(row, row + adapter->puyu_mask_rank);
    }
    return 0;
}
""" % {"id": LORA_MASK_ID}

GRAPH_H_INPUT = """// puyu_apps patch: masked LoRA.
// A graph input with a row for each token of a ubatch (or for its output tokens only, for weights applied after
// the last layer keeps only the outputs).
class llm_graph_input_puyu_rows : public llm_graph_input_i {
public:
    llm_graph_input_puyu_rows(int64_t n_rows, bool only_outputs) : n_rows(n_rows), only_outputs(only_outputs) {}
    virtual ~llm_graph_input_puyu_rows() = default;

    bool can_reuse(const llm_graph_params & params) override;

    // f(row, sequence id) for each row, in order
    template <typename F> void each_row(const llama_ubatch * ubatch, F && f) const {
        int64_t row = 0;
        for (uint32_t i = 0; i < ubatch->n_tokens && row < n_rows; ++i) {
            if (only_outputs && ubatch->output && !ubatch->output[i]) {
                continue;
            }
            f(row++, ubatch->seq_id[i][0]);
        }
        GGML_ASSERT(row == n_rows && "puyu masked LoRA: rows do not match the ubatch");
    }

    const int64_t n_rows;
    const bool only_outputs;
};

// The row masks of a masked adapter.
class llm_graph_input_puyu_lora_mask : public llm_graph_input_puyu_rows {
public:
    llm_graph_input_puyu_lora_mask(const llama_adapter_lora * adapter, int64_t n_rows, bool only_outputs)
        : llm_graph_input_puyu_rows(n_rows, only_outputs), adapter(adapter) {}

    void set_input(const llama_ubatch * ubatch) override;

    ggml_tensor * mask = nullptr; // F32 [puyu_mask_rank, n_rows]

    const llama_adapter_lora * adapter;
};

"""

GRAPH_H_INPUT_SEQS = """// puyu_apps patch: fused masked LoRA. The sequence of each row.
class llm_graph_input_puyu_lora_seqs : public llm_graph_input_puyu_rows {
public:
    using llm_graph_input_puyu_rows::llm_graph_input_puyu_rows;

    void set_input(const llama_ubatch * ubatch) override;

    ggml_tensor * seqs = nullptr; // I32 [n_rows]
};

"""

GRAPH_H_CONTEXT = """    // puyu_apps patch: masked LoRA (the mask inputs of this graph, one per adapter and row count)
    mutable std::map<std::pair<const llama_adapter_lora *, int64_t>, ggml_tensor *> puyu_lora_masks;
    ggml_tensor * build_inp_puyu_lora_mask(const llama_adapter_lora * adapter, int64_t n_rows) const;
    mutable std::map<int64_t, ggml_tensor *> puyu_lora_seqs;
    ggml_tensor * build_inp_puyu_lora_seqs(int64_t n_rows) const;

"""

GRAPH_CPP_KERNELS = r"""// puyu_apps patch: fused masked LoRA kernels.
// Token t of sequence s adds sum_r m_s[r] (A[r] . x_t) B[:, r] over the rows r where its mask m_s is not 0.
// libllama is built for the baseline ISA, so the loops are cloned for AVX-512 and AVX2 (picked at load time)
// and written on 16-float vectors.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PUYU_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define PUYU_CLONES
#endif
typedef float puyu_v16 __attribute__((vector_size(64), aligned(4), __may_alias__));

typedef llama_adapter_lora::puyu_fused_weight puyu_fw;

static inline const float * puyu_row_of(const puyu_fw * fw, const int32_t * seqs, int64_t t) {
    return fw->owner->puyu_seq_row(seqs[t]);
}

// h[t][r] = m[r] (A[r] . x_t) for the rows switched on; the (r, t) pairs are spread evenly over the threads
PUYU_CLONES
static void puyu_lora_fused_h(ggml_tensor * dst, int ith, int nth, void * userdata) {
    const puyu_fw * fw = (const puyu_fw *) userdata;
    const ggml_tensor * x = dst->src[0];
    const int32_t * seqs = (const int32_t *) dst->src[1]->data;
    const int64_t n_rows = x->ne[1];
    const int64_t n_in = fw->n_in;
    const int64_t rank = fw->rank;
    float * h = (float *) dst->data;
    int64_t work = 0;
    for (int64_t t = 0; t < n_rows; ++t) {
        const float * m = puyu_row_of(fw, seqs, t);
        if (m) {
            for (int64_t r = 0; r < rank; ++r) {
                work += m[r] != 0.0f;
            }
        }
    }
    const int64_t w0 = work*ith/nth;
    const int64_t w1 = work*(ith + 1)/nth;
    int64_t w = 0;
    const int64_t n16 = n_in - n_in % 16;
    for (int64_t r = 0; r < rank && w < w1; ++r) {
        const float * a = fw->a.data() + r*n_in;
        for (int64_t t = 0; t < n_rows && w < w1; ++t) {
            const float * m = puyu_row_of(fw, seqs, t);
            if (!m || m[r] == 0.0f) {
                continue;
            }
            if (w++ < w0) {
                continue;
            }
            const float * xt = (const float *) ((const char *) x->data + t*x->nb[1]);
            puyu_v16 acc0 = {0};
            puyu_v16 acc1 = {0};
            int64_t i = 0;
            for (; i + 32 <= n16; i += 32) {
                acc0 += *(const puyu_v16 *) (a + i) * *(const puyu_v16 *) (xt + i);
                acc1 += *(const puyu_v16 *) (a + i + 16) * *(const puyu_v16 *) (xt + i + 16);
            }
            for (; i < n16; i += 16) {
                acc0 += *(const puyu_v16 *) (a + i) * *(const puyu_v16 *) (xt + i);
            }
            acc0 += acc1;
            float sum = 0.0f;
            for (int k = 0; k < 16; ++k) {
                sum += acc0[k];
            }
            for (; i < n_in; ++i) {
                sum += a[i]*xt[i];
            }
            h[t*rank + r] = m[r]*sum;
        }
    }
}

// out[:, t] = res[:, t] + sum_r h[t][r] B[:, r] over t's rows; the output rows are split over the threads
PUYU_CLONES
static void puyu_lora_fused_out(ggml_tensor * dst, int ith, int nth, void * userdata) {
    const puyu_fw * fw = (const puyu_fw *) userdata;
    const ggml_tensor * res = dst->src[0];
    const float * h = (const float *) dst->src[1]->data;
    const int32_t * seqs = (const int32_t *) dst->src[2]->data;
    const int64_t n_out = fw->n_out;
    const int64_t n_rows = res->ne[1];
    const int64_t rank = fw->rank;
    const int64_t n_blocks = n_out/16;
    const int64_t o0 = 16*(n_blocks*ith/nth);
    const int64_t o1 = ith == nth - 1 ? n_out : 16*(n_blocks*(ith + 1)/nth);
    if (o1 <= o0) {
        return;
    }
    for (int64_t t = 0; t < n_rows; ++t) {
        memcpy((char *) dst->data + t*dst->nb[1] + o0*sizeof(float),
               (const char *) res->data + t*res->nb[1] + o0*sizeof(float), (o1 - o0)*sizeof(float));
    }
    const int64_t o16 = o0 + (o1 - o0) - (o1 - o0) % 16;
    for (int64_t r = 0; r < rank; ++r) {
        const float * bt = fw->bt.data() + r*n_out;
        for (int64_t t = 0; t < n_rows; ++t) {
            const float * m = puyu_row_of(fw, seqs, t);
            if (!m || m[r] == 0.0f) {
                continue;
            }
            const float c = h[t*rank + r];
            float * y = (float *) ((char *) dst->data + t*dst->nb[1]);
            int64_t o = o0;
            for (; o < o16; o += 16) {
                *(puyu_v16 *) (y + o) += c * *(const puyu_v16 *) (bt + o);
            }
            for (; o < o1; ++o) {
                y[o] += c*bt[o];
            }
        }
    }
}

"""

GRAPH_CPP_MM = """        if (lora.first->puyu_mask_rank > 0) { // puyu_apps patch: masked LoRA
            const auto fw = lora.first->puyu_fused.find(lw->a);
            if (fw != lora.first->puyu_fused.end() && scale == 1.0f && ggml_n_dims(cur) <= 2 &&
                    cur->type == GGML_TYPE_F32 && cur->nb[0] == sizeof(float) && res->type == GGML_TYPE_F32 &&
                    ggml_n_dims(res) <= 2 && res->nb[0] == sizeof(float)) {
                // fused: each token multiplies only its own rank rows (two custom ops, no mask product)
                ggml_tensor * seqs = build_inp_puyu_lora_seqs(cur->ne[1]);
                ggml_tensor * args_h[2] = {cur, seqs};
                ggml_tensor * h = ggml_custom_4d(ctx0, GGML_TYPE_F32, fw->second.rank, cur->ne[1], 1, 1, args_h, 2,
                                                 puyu_lora_fused_h, GGML_N_TASKS_MAX, (void *) &fw->second);
                ggml_tensor * args_o[3] = {res, h, seqs};
                res = ggml_custom_4d(ctx0, GGML_TYPE_F32, res->ne[0], res->ne[1], 1, 1, args_o, 3,
                                     puyu_lora_fused_out, GGML_N_TASKS_MAX, (void *) &fw->second);
                continue;
            }
            ggml_tensor * ax = ggml_mul_mat(ctx0, lw->a, cur);
            GGML_ASSERT(ggml_n_dims(ax) <= 2 && "puyu masked LoRA: 2-D activations only");
            ax = ggml_mul(ctx0, ax, build_inp_puyu_lora_mask(lora.first, ax->ne[1]));
            if (scale != 1.0f) {
                ax = ggml_scale(ctx0, ax, scale);
            }
            res = ggml_add(ctx0, res, ggml_mul_mat(ctx0, lw->b, ax));
            continue;
        }

"""

GRAPH_CPP_END = """

// puyu_apps patch: masked LoRA
bool llm_graph_input_puyu_rows::can_reuse(const llm_graph_params & params) {
    return n_rows == (only_outputs ? (int64_t) params.n_outputs : (int64_t) params.ubatch.n_tokens);
}

void llm_graph_input_puyu_lora_mask::set_input(const llama_ubatch * ubatch) {
    GGML_ASSERT(mask && ggml_backend_buffer_is_host(mask->buffer));
    const int64_t n_rank = mask->ne[0];
    float * data = (float *) mask->data;
    each_row(ubatch, [&](int64_t row, llama_seq_id s) {
        const float * m = adapter->puyu_seq_row(s);
        if (m) {
            memcpy(data + row*n_rank, m, n_rank*sizeof(float));
        } else {
            memset(data + row*n_rank, 0, n_rank*sizeof(float));
        }
    });
}

void llm_graph_input_puyu_lora_seqs::set_input(const llama_ubatch * ubatch) {
    GGML_ASSERT(seqs && ggml_backend_buffer_is_host(seqs->buffer));
    int32_t * data = (int32_t *) seqs->data;
    each_row(ubatch, [&](int64_t row, llama_seq_id s) { data[row] = s; });
}

// rows: every token of the ubatch, or (after the last layer dropped the others) its output tokens
static bool puyu_only_outputs(int64_t n_rows, int64_t n_tokens, int64_t n_outputs) {
    const bool only_outputs = n_rows != n_tokens;
    GGML_ASSERT((!only_outputs || n_rows == n_outputs) && "puyu masked LoRA: activations of an unexpected length");
    return only_outputs;
}

ggml_tensor * llm_graph_context::build_inp_puyu_lora_mask(const llama_adapter_lora * adapter, int64_t n_rows) const {
    const auto key = std::make_pair(adapter, n_rows);
    auto it = puyu_lora_masks.find(key);
    if (it != puyu_lora_masks.end()) {
        return it->second;
    }
    auto inp = std::make_unique<llm_graph_input_puyu_lora_mask>(
        adapter, n_rows, puyu_only_outputs(n_rows, n_tokens, n_outputs));
    ggml_tensor * cur = ggml_new_tensor_2d(ctx0, GGML_TYPE_F32, adapter->puyu_mask_rank, n_rows);
    ggml_set_input(cur);
    ggml_set_name(cur, "puyu_lora_mask");
    inp->mask = cur;
    res->add_input(std::move(inp));
    puyu_lora_masks[key] = cur;
    return cur;
}

ggml_tensor * llm_graph_context::build_inp_puyu_lora_seqs(int64_t n_rows) const {
    auto it = puyu_lora_seqs.find(n_rows);
    if (it != puyu_lora_seqs.end()) {
        return it->second;
    }
    auto inp = std::make_unique<llm_graph_input_puyu_lora_seqs>(n_rows, puyu_only_outputs(n_rows, n_tokens, n_outputs));
    ggml_tensor * cur = ggml_new_tensor_1d(ctx0, GGML_TYPE_I32, n_rows);
    ggml_set_input(cur);
    ggml_set_name(cur, "puyu_lora_seqs");
    inp->seqs = cur;
    res->add_input(std::move(inp));
    puyu_lora_seqs[n_rows] = cur;
    return cur;
}
"""

EDITS = [
    ("src/llama-adapter.h", "    std::vector<llama_token> alora_invocation_tokens;\n", ADAPTER_H, "after"),
    ("src/llama-graph.h", "class llm_graph_input_out_ids : public llm_graph_input_i {\n", GRAPH_H_INPUT, "before"),
    ("src/llama-graph.h", "class llm_graph_input_out_ids : public llm_graph_input_i {\n", GRAPH_H_INPUT_SEQS, "before"),
    ("src/llama-graph.h", "    llm_graph_context(const llm_graph_params & params);\n", GRAPH_H_CONTEXT, "before"),
    ("src/llama-graph.cpp", "ggml_tensor * llm_graph_context::build_lora_mm(\n", GRAPH_CPP_KERNELS, "before"),
    ("src/llama-graph.cpp", "        ggml_tensor * ab_cur = ggml_mul_mat(\n                ctx0, lw->b,\n"
                            "                ggml_mul_mat(ctx0, lw->a, cur)\n", GRAPH_CPP_MM, "before"),
    ("src/llama-graph.cpp", None, GRAPH_CPP_END, "end"),
    ("src/llama-adapter.cpp", None, ADAPTER_CPP, "end"),
]


def apply(src: Path) -> str:
    """Apply every edit to the llama.cpp tree ``src``; all anchors are checked before any file is written."""
    texts: dict[str, str] = {}
    for rel, anchor, _, _ in EDITS:
        path = src / rel
        text = texts.get(rel) or path.read_text()
        if MARK in text:
            return f"{src}: masked LoRA already patched"
        if anchor is not None and text.count(anchor) != 1:
            raise SystemExit(f"{path}: an anchor of the masked-LoRA patch was not found once; not patched "
                             f"(another llama.cpp version?)")
        texts[rel] = text
    for rel, anchor, text, where in EDITS:
        cur = texts[rel]
        if where == "end":
            cur = cur + text
        elif where == "before":
            cur = cur.replace(anchor, text + anchor, 1)
        else:
            cur = cur.replace(anchor, anchor + text, 1)
        texts[rel] = cur
    for rel, text in texts.items():
        (src / rel).write_text(text)
    return f"{src}: masked LoRA added"

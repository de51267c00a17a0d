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
LORA_MASK_ID = "puyu_apps:lora_mask:1"

ADAPTER_H = """
    // puyu_apps patch: masked LoRA. With puyu_mask_rank > 0 every adapted weight has that rank, and the rank rows
    // of token t are multiplied by the row mask of t's sequence (no row set: all 0, the base model).
    int32_t puyu_mask_rank = 0;
    std::vector<std::vector<float>> puyu_seq_mask;

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

GRAPH_H_INPUT = """// puyu_apps patch: masked LoRA. The row masks of a masked adapter for the tokens of a ubatch (or for its output
// tokens only, for weights applied after the last layer keeps only the outputs).
class llm_graph_input_puyu_lora_mask : public llm_graph_input_i {
public:
    llm_graph_input_puyu_lora_mask(const llama_adapter_lora * adapter, bool only_outputs)
        : adapter(adapter), only_outputs(only_outputs) {}
    virtual ~llm_graph_input_puyu_lora_mask() = default;

    void set_input(const llama_ubatch * ubatch) override;

    bool can_reuse(const llm_graph_params & params) override;

    ggml_tensor * mask = nullptr; // F32 [puyu_mask_rank, n_rows]

    const llama_adapter_lora * adapter;
    const bool only_outputs;
};

"""

GRAPH_H_CONTEXT = """    // puyu_apps patch: masked LoRA (the mask inputs of this graph, one per adapter and row count)
    mutable std::map<std::pair<const llama_adapter_lora *, int64_t>, ggml_tensor *> puyu_lora_masks;
    ggml_tensor * build_inp_puyu_lora_mask(const llama_adapter_lora * adapter, int64_t n_rows) const;

"""

GRAPH_CPP_MM = """        if (lora.first->puyu_mask_rank > 0) { // puyu_apps patch: masked LoRA
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
void llm_graph_input_puyu_lora_mask::set_input(const llama_ubatch * ubatch) {
    GGML_ASSERT(mask && ggml_backend_buffer_is_host(mask->buffer));
    const int64_t n_rank = mask->ne[0];
    const int64_t n_rows = mask->ne[1];
    float * data = (float *) mask->data;
    int64_t row = 0;
    for (uint32_t i = 0; i < ubatch->n_tokens && row < n_rows; ++i) {
        if (only_outputs && ubatch->output && !ubatch->output[i]) {
            continue;
        }
        const float * m = adapter->puyu_seq_row(ubatch->seq_id[i][0]);
        if (m) {
            memcpy(data + row*n_rank, m, n_rank*sizeof(float));
        } else {
            memset(data + row*n_rank, 0, n_rank*sizeof(float));
        }
        ++row;
    }
    GGML_ASSERT(row == n_rows && "puyu masked LoRA: rows do not match the ubatch");
}

bool llm_graph_input_puyu_lora_mask::can_reuse(const llm_graph_params & params) {
    return mask->ne[1] == (only_outputs ? (int64_t) params.n_outputs : (int64_t) params.ubatch.n_tokens);
}

ggml_tensor * llm_graph_context::build_inp_puyu_lora_mask(const llama_adapter_lora * adapter, int64_t n_rows) const {
    const auto key = std::make_pair(adapter, n_rows);
    auto it = puyu_lora_masks.find(key);
    if (it != puyu_lora_masks.end()) {
        return it->second;
    }
    // rows: every token of the ubatch, or (after the last layer dropped the others) its output tokens
    const bool only_outputs = n_rows != n_tokens;
    GGML_ASSERT((!only_outputs || n_rows == n_outputs) && "puyu masked LoRA: activations of an unexpected length");
    auto inp = std::make_unique<llm_graph_input_puyu_lora_mask>(adapter, only_outputs);
    ggml_tensor * cur = ggml_new_tensor_2d(ctx0, GGML_TYPE_F32, adapter->puyu_mask_rank, n_rows);
    ggml_set_input(cur);
    ggml_set_name(cur, "puyu_lora_mask");
    inp->mask = cur;
    res->add_input(std::move(inp));
    puyu_lora_masks[key] = cur;
    return cur;
}
"""

EDITS = [
    ("src/llama-adapter.h", "    std::vector<llama_token> alora_invocation_tokens;\n", ADAPTER_H, "after"),
    ("src/llama-graph.h", "class llm_graph_input_out_ids : public llm_graph_input_i {\n", GRAPH_H_INPUT, "before"),
    ("src/llama-graph.h", "    llm_graph_context(const llm_graph_params & params);\n", GRAPH_H_CONTEXT, "before"),
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

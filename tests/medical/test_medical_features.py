"""CLIP-style features: the contrastive loss, the embedded encoder (recipe + shipped weights), HF CLIP and
Chinese-CLIP loading on tiny random checkpoints, and retrieval of finding phrases."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_clip_loss_prefers_aligned_pairs():
    import torch

    from puyu_apps.medical.features import clip_loss

    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    eye = torch.eye(8)
    scale = torch.tensor(np.log(1 / 0.07))
    aligned = clip_loss(a, a, scale, eye)
    shuffled = clip_loss(a, a.roll(1, 0), scale, eye)
    assert aligned < 0.1 < shuffled


def test_phrase_bank_and_captions():
    from puyu_apps.medical.features import caption_index, phrase_bank

    bank = phrase_bank()
    assert len(bank) == 12 and bank[caption_index("part-solid", 7.0)]["en"] == "part-solid nodule 6 to 8 mm"
    assert bank[caption_index("ground-glass", 30)]["zh"] == "15毫米及以上磨玻璃结节"


def test_encoder_recipe_runs_and_reloads(tmp_path):
    from puyu_apps.medical.features import EncoderTrainConfig, PhraseRetriever, load_encoder, train_encoder

    r = train_encoder(tmp_path / "e.pt", EncoderTrainConfig(n_volumes=1, steps=3, batch=8), log=lambda s: None)
    assert r["crops"] > 0
    retr = PhraseRetriever(load_encoder(tmp_path / "e.pt"))
    assert retr.scores(np.zeros((2, 32, 32), np.float32)).shape == (2, 12)


def test_shipped_encoder_beats_chance_on_held_out_crops():
    from puyu_apps.medical.features import evaluate_encoder

    m = evaluate_encoder(n_volumes=3, seed=4242)
    assert m["type_accuracy"] > 0.5 and m["top1_phrase"] > 2 * m["chance_top1"], m


def _clip_tokenizer(folder):
    from transformers import CLIPTokenizer

    words = sorted({w for s in ["solid part-solid ground-glass nodule under 6 to 8 15 mm or larger"]
                    for w in s.replace("-", " - ").split()})
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789-"))
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
                                        + [w + "</w>" for w in words])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
    tok.save_pretrained(folder)


def test_hf_clip_loads_from_tiny_random_config(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    from puyu_apps.medical.clip_hf import load_hf_clip
    from puyu_apps.medical.features import PhraseRetriever, load_retriever

    _clip_tokenizer(tmp_path)
    vocab_size = len(json.loads((tmp_path / "vocab.json").read_text()))
    cfg = CLIPConfig(text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32,
                                      bos_token_id=0, eos_token_id=1, pad_token_id=1),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=32, patch_size=8),
                     projection_dim=16)
    CLIPModel(cfg).save_pretrained(tmp_path)
    enc = load_hf_clip(tmp_path)
    img = enc.encode_image(np.random.default_rng(0).random((3, 32, 32)))
    txt = enc.encode_text(["solid nodule under 6 mm", "ground-glass nodule 8 to 15 mm"])
    assert img.shape == (3, 16) and txt.shape == (2, 16)
    assert np.allclose(np.linalg.norm(img.numpy(), axis=1), 1, atol=1e-5)
    assert isinstance(load_retriever(tmp_path), PhraseRetriever)


def test_chinese_clip_loads_from_tiny_random_config(tmp_path):
    from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPModel

    from puyu_apps.medical.clip_hf import load_hf_clip
    from puyu_apps.medical.features import phrase_bank

    chars = sorted({c for b in phrase_bank() for c in b["zh"]})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n")
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    cfg = ChineseCLIPConfig(text_config=dict(vocab_size=len(chars) + 5, hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=2, num_attention_heads=2,
                                             max_position_embeddings=64),
                            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, image_size=32, patch_size=8),
                            projection_dim=16)
    ChineseCLIPModel(cfg).save_pretrained(tmp_path)
    enc = load_hf_clip(tmp_path)
    assert enc.encode_text([b["zh"] for b in phrase_bank()]).shape == (12, 16)
    assert enc.encode_image(np.zeros((1, 32, 32))).shape == (1, 16)

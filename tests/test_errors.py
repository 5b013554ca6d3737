"""Bad input fails early and says why: every error names the argument, what was expected (shape
or range) and what it got. One parametrized case per mistake a reader is likely to make."""

import pytest
import torch

from transformer import (
    DecoderOnlyTransformer,
    LearnedPositionalEmbedding,
    MultiHeadAttention,
    PositionwiseFeedForward,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    Transformer,
    TransformerConfig,
    causal_mask,
    decoder_mask,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_table,
    to_torch_masks,
)
from transformer.layers import feed_forward, make_norm

D, H = 32, 4


def _x(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


def _mha(query, key, value, mask=None, **kw):
    return MultiHeadAttention(D, H)(query, key, value, mask, **kw)


def _self_attn(mask, need_weights=False):
    x = _x(2, 5, D)
    return _mha(x, x, x, mask, need_weights=need_weights)


def _sdpa(q_shape=(2, 4, 5, 8), k_shape=(2, 4, 6, 8), v_shape=(2, 4, 6, 8), mask=None, **kw):
    return scaled_dot_product_attention(_x(*q_shape), _x(*k_shape), _x(*v_shape), mask, **kw)


def _tiny(**changes):
    return Transformer(TransformerConfig.tiny(vocab_size=16, **changes))


def _lm(**changes):
    return DecoderOnlyTransformer(TransformerConfig.tiny(vocab_size=16, **changes))


def _ids(*shape: int, high: int = 16) -> torch.Tensor:
    return torch.randint(1, high, shape)


CASES = [
    # --- multi-head attention inputs (§3.2.2) ---
    ("query_wrong_rank", lambda: _mha(_x(5, D), _x(2, 5, D), _x(2, 5, D)),
     ValueError, r"query must have shape \(batch, seq, d_model=32\), got \(5, 32\)"),
    ("key_wrong_rank", lambda: _mha(_x(2, 5, D), _x(2, 1, 5, D), _x(2, 5, D)),
     ValueError, r"key must have shape \(batch, seq, d_model=32\), got \(2, 1, 5, 32\)"),
    ("value_wrong_rank", lambda: _mha(_x(2, 5, D), _x(2, 5, D), _x(5, D)),
     ValueError, r"value must have shape \(batch, seq, d_model=32\), got \(5, 32\)"),
    ("query_wrong_d_model", lambda: _mha(_x(2, 5, 16), _x(2, 5, D), _x(2, 5, D)),
     ValueError, r"query must have shape \(batch, seq, d_model=32\), got \(2, 5, 16\)"),
    ("key_wrong_d_model", lambda: _mha(_x(2, 5, D), _x(2, 5, 48), _x(2, 5, 48)),
     ValueError, r"key must have shape \(batch, seq, d_model=32\), got \(2, 5, 48\)"),
    ("mismatched_batch", lambda: _mha(_x(2, 5, D), _x(3, 5, D), _x(3, 5, D)),
     ValueError, r"query, key and value must have the same batch size, got 2, 3, 3"),
    ("key_value_length_mismatch", lambda: _mha(_x(2, 5, D), _x(2, 6, D), _x(2, 4, D)),
     ValueError, r"key and value must have the same length, got 6 and 4"),
    ("heads_do_not_divide_d_model", lambda: MultiHeadAttention(30, 4),
     ValueError, r"d_model \(30\) must be a positive multiple of n_heads \(4\)"),
    ("mha_dropout_out_of_range", lambda: MultiHeadAttention(D, H, dropout=1.0),
     ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    # --- masks given to attention (§3.2.3) ---
    ("mask_wrong_k_len", lambda: _self_attn(torch.ones(2, 1, 1, 4, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to \(batch, heads, q_len, k_len\) = "
                 r"\(2, 4, 5, 5\), got shape \(2, 1, 1, 4\)"),
    ("mask_wrong_batch", lambda: _self_attn(torch.ones(3, 1, 1, 5, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to \(batch, heads, q_len, k_len\) = "
                 r"\(2, 4, 5, 5\), got shape \(3, 1, 1, 5\)"),
    ("mask_wrong_batch_explicit_path",
     lambda: _self_attn(torch.ones(3, 1, 5, 5, dtype=torch.bool), need_weights=True),
     ValueError, r"mask must be broadcastable to .* = \(2, 4, 5, 5\), got shape \(3, 1, 5, 5\)"),
    ("mask_3d_batch_lands_on_heads", lambda: _self_attn(torch.ones(2, 5, 5, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to .* = \(2, 4, 5, 5\), got shape \(2, 5, 5\)"),
    ("mask_too_many_dims", lambda: _self_attn(torch.ones(1, 2, 1, 1, 5, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to .* = \(2, 4, 5, 5\), got shape \(1, 2, 1, 1, 5\)"),
    ("mask_float_not_bool", lambda: _self_attn(torch.ones(2, 1, 1, 5)),
     TypeError, r"mask must be a boolean tensor \(True = may attend\), got torch.float32"),
    ("mask_int_not_bool", lambda: _self_attn(torch.ones(1, 1, 5, 5, dtype=torch.long)),
     TypeError, r"mask must be a boolean tensor \(True = may attend\), got torch.int64"),
    # --- scaled dot-product attention (eq. 1) ---
    ("sdpa_q_k_d_k_mismatch", lambda: _sdpa(k_shape=(2, 4, 6, 6), v_shape=(2, 4, 6, 8)),
     ValueError, r"q and k must share d_k \(last dim\), got 8 and 6"),
    ("sdpa_k_v_length_mismatch", lambda: _sdpa(v_shape=(2, 4, 7, 8)),
     ValueError, r"k and v must have the same length \(dim -2\), got 6 and 7"),
    ("sdpa_rank_below_2", lambda: _sdpa(q_shape=(8,)),
     ValueError, r"q, k and v must have at least 2 dims \(\.\.\., seq, d\), got \(8,\)"),
    ("sdpa_mask_wrong_batch", lambda: _sdpa(mask=torch.ones(3, 1, 5, 6, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to .* = \(2, 4, 5, 6\), got shape \(3, 1, 5, 6\)"),
    ("sdpa_mask_wrong_q_len", lambda: _sdpa(mask=torch.ones(1, 1, 4, 6, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to .* = \(2, 4, 5, 6\), got shape \(1, 1, 4, 6\)"),
    ("sdpa_mask_not_bool", lambda: _sdpa(mask=torch.ones(5, 6, dtype=torch.uint8)),
     TypeError, r"mask must be a boolean tensor \(True = may attend\), got torch.uint8"),
    ("sdpa_dropout_out_of_range", lambda: _sdpa(dropout_p=-0.1),
     ValueError, r"dropout_p must be in \[0, 1\), got -0.1"),
    # --- embeddings and positions (§3.4, §3.5) ---
    ("token_id_too_large", lambda: TokenEmbedding(16, 8)(torch.tensor([[3, 16]])),
     ValueError, r"tokens must hold ids in \[0, vocab_size=16\), got ids in \[3, 16\]"),
    ("token_id_negative", lambda: TokenEmbedding(16, 8)(torch.tensor([[-1, 2]])),
     ValueError, r"tokens must hold ids in \[0, vocab_size=16\), got ids in \[-1, 2\]"),
    ("token_ids_as_floats", lambda: TokenEmbedding(16, 8)(torch.tensor([[1.0, 2.0]])),
     TypeError, r"tokens must hold integer ids \(torch.long or torch.int\), got dtype "
                r"torch.float32"),
    ("token_ids_as_bool", lambda: TokenEmbedding(16, 8)(torch.tensor([[True]])),
     TypeError, r"tokens must hold integer ids .*got dtype torch.bool"),
    ("token_ids_as_list", lambda: TokenEmbedding(16, 8)([[1, 2]]),
     TypeError, r"tokens must be a tensor of integer ids, got list"),
    ("tokens_without_batch_dim", lambda: TokenEmbedding(16, 8)(torch.tensor([1, 2, 3])),
     ValueError, r"tokens must have shape \(batch, seq\), got \(3,\)"),
    ("embedding_vocab_not_positive", lambda: TokenEmbedding(0, 8),
     ValueError, r"vocab_size and d_model must be positive, got 0, 8"),
    ("sequence_longer_than_sinusoidal_table",
     lambda: SinusoidalPositionalEncoding(8, max_len=5)(_x(1, 6, 8)),
     ValueError, r"sequence too long: x has seq=6 at offset=0.* but max_len=5"),
    ("sequence_longer_than_learned_table",
     lambda: LearnedPositionalEmbedding(8, max_len=5)(_x(1, 3, 8), offset=3),
     ValueError, r"sequence too long: x has seq=3 at offset=3, needing positions 0\.\.5, "
                 r"but max_len=5"),
    ("negative_position_offset", lambda: SinusoidalPositionalEncoding(8)(_x(1, 2, 8), -1),
     ValueError, r"offset must be >= 0, got -1"),
    ("positions_wrong_d_model", lambda: SinusoidalPositionalEncoding(8)(_x(1, 2, 6)),
     ValueError, r"x must have shape \(batch, seq, d_model=8\), got \(1, 2, 6\)"),
    ("sinusoidal_odd_d_model", lambda: sinusoidal_table(10, 7),
     ValueError, r"d_model must be even for sinusoidal positions, got 7"),
    # --- feed-forward ---
    ("unknown_activation_in_feed_forward", lambda: PositionwiseFeedForward(8, 16,
                                                                           activation="swish"),
     ValueError, r"activation must be one of \['gelu', 'relu'\], got 'swish'"),
    # --- the config (Table 3) ---
    ("config_heads_do_not_divide_d_model", lambda: TransformerConfig(d_model=30, n_heads=4),
     ValueError, r"d_model \(30\) must be divisible by n_heads \(4\)"),
    ("config_dropout_out_of_range", lambda: TransformerConfig(dropout=-0.1),
     ValueError, r"dropout must be a number in \[0, 1\), got -0.1 \(float\)"),
    ("config_unknown_activation", lambda: TransformerConfig(activation="swish"),
     ValueError, r"activation must be one of \['gelu', 'relu', 'swiglu'\], got 'swish'"),
    ("config_unknown_positional", lambda: TransformerConfig(positional="rotary-ish"),
     ValueError, r"positional must be 'sinusoidal', 'learned' or 'rope', got 'rotary-ish'"),
    ("config_tied_embeddings_with_two_vocabularies",
     lambda: TransformerConfig(vocab_size=100, tgt_vocab_size=120),
     ValueError, r"tie_embeddings needs one shared vocabulary: tgt_vocab_size \(120\) != "
                 r"vocab_size \(100\)"),
    ("config_layers_not_positive", lambda: TransformerConfig(n_layers=0),
     ValueError, r"n_layers must be a positive integer, got 0 \(int\)"),
    ("config_pad_id_outside_vocabulary", lambda: TransformerConfig.tiny(pad_id=16),
     ValueError, r"pad_id must be an integer token id of both vocabularies, in \[0, 16\), "
                 r"got 16 \(int\)"),
    ("config_bool_is_not_an_int", lambda: TransformerConfig(n_layers=True),
     ValueError, r"n_layers must be a positive integer, got True \(bool\)"),
    ("config_float_is_not_an_int", lambda: TransformerConfig(d_model=512.0),
     ValueError, r"d_model must be a positive integer, got 512.0 \(float\)"),
    ("config_string_vocab_size", lambda: TransformerConfig(vocab_size="100"),
     ValueError, r"vocab_size must be a positive integer, got '100' \(str\)"),
    ("config_max_len_not_positive", lambda: TransformerConfig(max_len=-1),
     ValueError, r"max_len must be a positive integer, got -1 \(int\)"),
    ("config_tgt_vocab_size_zero", lambda: TransformerConfig(tgt_vocab_size=0,
                                                             tie_embeddings=False),
     ValueError, r"tgt_vocab_size must be None or a positive integer, got 0 \(int\)"),
    ("config_tgt_vocab_size_bool", lambda: TransformerConfig(tgt_vocab_size=True),
     ValueError, r"tgt_vocab_size must be None or a positive integer, got True \(bool\)"),
    ("config_layer_norm_eps_negative", lambda: TransformerConfig(layer_norm_eps=-1),
     ValueError, r"layer_norm_eps must be a finite number > 0, got -1 \(int\)"),
    ("config_layer_norm_eps_zero", lambda: TransformerConfig(layer_norm_eps=0.0),
     ValueError, r"layer_norm_eps must be a finite number > 0, got 0.0 \(float\)"),
    ("config_layer_norm_eps_nan", lambda: TransformerConfig(layer_norm_eps=float("nan")),
     ValueError, r"layer_norm_eps must be a finite number > 0, got nan \(float\)"),
    ("config_layer_norm_eps_infinite", lambda: TransformerConfig(layer_norm_eps=float("inf")),
     ValueError, r"layer_norm_eps must be a finite number > 0, got inf \(float\)"),
    ("config_layer_norm_eps_string", lambda: TransformerConfig(layer_norm_eps="1e-5"),
     ValueError, r"layer_norm_eps must be a finite number > 0, got '1e-5' \(str\)"),
    ("config_norm_first_string", lambda: TransformerConfig(norm_first="no"),
     ValueError, r"norm_first must be True or False, got 'no' \(str\)"),
    ("config_tie_embeddings_int", lambda: TransformerConfig(tie_embeddings=1),
     ValueError, r"tie_embeddings must be True or False, got 1 \(int\)"),
    ("config_bias_none", lambda: TransformerConfig(bias=None),
     ValueError, r"bias must be True or False, got None \(NoneType\)"),
    ("config_fused_qkv_string", lambda: TransformerConfig(fused_qkv="yes"),
     ValueError, r"fused_qkv must be True or False, got 'yes' \(str\)"),
    ("config_final_norm_string", lambda: TransformerConfig(final_norm="auto"),
     ValueError, r"final_norm must be None, True or False, got 'auto' \(str\)"),
    ("config_dropout_string", lambda: TransformerConfig(dropout="0.1"),
     ValueError, r"dropout must be a number in \[0, 1\), got '0.1' \(str\)"),
    ("config_dropout_bool", lambda: TransformerConfig(dropout=True),
     ValueError, r"dropout must be a number in \[0, 1\), got True \(bool\)"),
    ("config_dropout_nan", lambda: TransformerConfig(dropout=float("nan")),
     ValueError, r"dropout must be a number in \[0, 1\), got nan \(float\)"),
    ("config_pad_id_float", lambda: TransformerConfig(pad_id=1.0),
     ValueError, r"pad_id must be an integer token id of both vocabularies, in \[0, 37000\), "
                 r"got 1.0 \(float\)"),
    ("config_pad_id_negative", lambda: TransformerConfig(pad_id=-1),
     ValueError, r"pad_id must be an integer token id .*got -1 \(int\)"),
    ("config_pad_id_outside_target_vocabulary",
     lambda: TransformerConfig(vocab_size=100, tgt_vocab_size=10, tie_embeddings=False,
                               pad_id=10),
     ValueError, r"pad_id must be an integer token id of both vocabularies, in \[0, 10\), "
                 r"got 10 \(int\)"),
    ("config_activation_not_a_string", lambda: TransformerConfig(activation=None),
     ValueError, r"activation must be one of \['gelu', 'relu', 'swiglu'\], got None "
                 r"\(NoneType\)"),
    ("config_positional_not_a_string", lambda: TransformerConfig(positional=["learned"]),
     ValueError, r"positional must be 'sinusoidal', 'learned' or 'rope', got \['learned'\] "
                 r"\(list\)"),
    ("config_sinusoidal_odd_d_model", lambda: TransformerConfig(d_model=9, n_heads=3),
     ValueError, r"d_model must be even for sinusoidal positions, got 9"),
    # --- the modern variants of chapter 15 ---
    ("config_unknown_norm", lambda: TransformerConfig(norm="batchnorm"),
     ValueError, r"norm must be one of \['layernorm', 'rmsnorm'\], got 'batchnorm' \(str\)"),
    ("config_norm_not_a_string", lambda: TransformerConfig(norm=None),
     ValueError, r"norm must be one of \['layernorm', 'rmsnorm'\], got None \(NoneType\)"),
    ("config_n_kv_heads_does_not_divide_n_heads", lambda: TransformerConfig(n_kv_heads=3),
     ValueError, r"n_kv_heads must be None or a positive integer that divides n_heads \(8\), "
                 r"got 3 \(int\)"),
    ("config_n_kv_heads_zero", lambda: TransformerConfig(n_kv_heads=0),
     ValueError, r"n_kv_heads must be None or a positive integer that divides n_heads \(8\), "
                 r"got 0 \(int\)"),
    ("config_n_kv_heads_float", lambda: TransformerConfig(n_kv_heads=2.0),
     ValueError, r"n_kv_heads must be None or a positive integer .*, got 2.0 \(float\)"),
    ("config_n_kv_heads_bool", lambda: TransformerConfig(n_kv_heads=True),
     ValueError, r"n_kv_heads must be None or a positive integer .*, got True \(bool\)"),
    ("config_rope_base_not_above_1", lambda: TransformerConfig(rope_base=1.0),
     ValueError, r"rope_base must be a finite number > 1, got 1.0 \(float\)"),
    ("config_rope_base_string", lambda: TransformerConfig(rope_base="10000"),
     ValueError, r"rope_base must be a finite number > 1, got '10000' \(str\)"),
    ("config_rope_base_infinite", lambda: TransformerConfig(rope_base=float("inf")),
     ValueError, r"rope_base must be a finite number > 1, got inf \(float\)"),
    ("config_rope_odd_d_head",
     lambda: TransformerConfig(d_model=12, n_heads=4, positional="rope"),
     ValueError, r"positional='rope' needs an even d_head = d_model / n_heads, got 12 / 4 = 3"),
    ("mha_n_kv_heads_does_not_divide", lambda: MultiHeadAttention(D, H, n_kv_heads=3),
     ValueError, r"n_kv_heads must be None or a positive integer that divides n_heads \(4\), "
                 r"got 3"),
    ("rotary_odd_d_head", lambda: RotaryEmbedding(7),
     ValueError, r"d_head must be even for rotary positions, got 7"),
    ("rotary_wrong_d_head", lambda: RotaryEmbedding(8)(_x(2, 4, 5, 6)),
     ValueError, r"x must have shape \(\.\.\., seq, d_head=8\), got \(2, 4, 5, 6\)"),
    ("rotary_past_max_len", lambda: RotaryEmbedding(8, max_len=6)(_x(1, 2, 4, 8), offset=3),
     ValueError, r"sequence too long: x has seq=4 at offset=3, needing positions 0..6, but "
                 r"max_len=6"),
    ("rope_model_past_max_len", lambda: _lm(positional="rope", max_len=4)(_ids(1, 5)),
     ValueError, r"sequence too long: x has seq=5 at offset=0, needing positions 0..4, but "
                 r"max_len=4"),
    ("feed_forward_unknown_activation", lambda: feed_forward(8, 16, activation="swish"),
     ValueError, r"activation must be one of \['gelu', 'relu', 'swiglu'\], got 'swish'"),
    ("make_norm_unknown", lambda: make_norm("groupnorm", 8),
     ValueError, r"norm must be one of \['layernorm', 'rmsnorm'\], got 'groupnorm'"),
    ("config_from_dict_not_a_dict", lambda: TransformerConfig.from_dict([("d_model", 8)]),
     ValueError, r"a TransformerConfig is read from a dict of field values, got list"),
    ("config_from_dict_none", lambda: TransformerConfig.from_dict(None),
     ValueError, r"a TransformerConfig is read from a dict of field values, got NoneType"),
    ("config_from_dict_unknown_keys",
     lambda: TransformerConfig.from_dict({"d_model": 64, "n_head": 4, "heads": 2}),
     ValueError, r"unknown TransformerConfig field\(s\) 'heads', 'n_head'; the fields are "
                 r"\['vocab_size', 'tgt_vocab_size', 'd_model', 'n_heads',"),
    ("config_from_dict_wrong_type", lambda: TransformerConfig.from_dict({"n_layers": "6"}),
     ValueError, r"n_layers must be a positive integer, got '6' \(str\)"),
    ("config_from_dict_json_bool_as_int", lambda: TransformerConfig.from_dict({"bias": 1}),
     ValueError, r"bias must be True or False, got 1 \(int\)"),
    # --- the models ---
    ("forward_empty_source", lambda: _tiny()(_ids(2, 0), _ids(2, 3)),
     ValueError, r"src must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(2, 0\)"),
    ("encode_empty_source", lambda: _tiny().encode(_ids(2, 0)),
     ValueError, r"src must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(2, 0\)"),
    ("forward_empty_target", lambda: _tiny()(_ids(2, 4), _ids(2, 0)),
     ValueError, r"tgt must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(2, 0\)"),
    ("forward_empty_batch", lambda: _tiny()(_ids(0, 4), _ids(0, 3)),
     ValueError, r"src must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(0, 4\)"),
    ("decode_empty_target", lambda: _tiny().decode(_ids(2, 0), _x(2, 5, D)),
     ValueError, r"tgt must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(2, 0\)"),
    ("decode_memory_of_length_zero", lambda: _tiny().decode(_ids(2, 3), _x(2, 0, D)),
     ValueError, r"memory must have src_len >= 1, got shape \(2, 0, 32\)"),
    ("decode_memory_wrong_rank", lambda: _tiny().decode(_ids(2, 3), _x(5, D)),
     ValueError, r"memory must have shape \(batch, src_len, d_model=32\), got \(5, 32\)"),
    ("decode_target_wrong_rank_before_batch", lambda: _tiny().decode(_ids(4), _x(2, 5, D)),
     ValueError, r"tgt must have shape \(batch, seq\), got \(4,\)"),
    ("forward_source_wrong_rank_before_batch", lambda: _tiny()(_ids(5, 2, 3), _ids(2, 3)),
     ValueError, r"src must have shape \(batch, seq\), got \(5, 2, 3\)"),
    ("forward_target_wrong_rank_before_batch", lambda: _tiny()(_ids(2, 3), _ids(3)),
     ValueError, r"tgt must have shape \(batch, seq\), got \(3,\)"),
    ("forward_source_not_a_tensor", lambda: _tiny()([[1, 2]], _ids(1, 2)),
     TypeError, r"src must be a \(batch, seq\) tensor of token ids, got list"),
    ("decoder_only_1d_tokens", lambda: _lm()(_ids(5)),
     ValueError, r"tokens must have shape \(batch, seq\), got \(5,\)"),
    ("decoder_only_empty_sequence", lambda: _lm()(_ids(2, 0)),
     ValueError, r"tokens must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(2, 0\)"),
    ("decoder_only_empty_batch", lambda: _lm()(_ids(0, 4)),
     ValueError, r"tokens must have shape \(batch, seq\) with batch >= 1 and seq >= 1, got "
                 r"\(0, 4\)"),
    ("decoder_only_empty_step_with_cache", lambda: _lm()(_ids(2, 0), cache=_lm().new_cache()),
     ValueError, r"tokens must have shape \(batch, seq\) with batch >= 1 and seq >= 1"),
    ("masks_are_keyword_only", lambda: _tiny()(_ids(2, 3), _ids(2, 3), padding_mask(_ids(2, 3), 0)),
     TypeError, r"takes 3 positional arguments but 4 were given"),
    ("forward_src_tgt_batch_mismatch", lambda: _tiny()(_ids(2, 5), _ids(3, 4)),
     ValueError, r"src and tgt must have the same batch size, got 2 and 3"),
    ("decode_tgt_memory_batch_mismatch", lambda: _tiny().decode(_ids(3, 4), _x(2, 5, D)),
     ValueError, r"tgt and memory must have the same batch size, got 3 and 2"),
    ("decode_memory_wrong_d_model", lambda: _tiny().decode(_ids(2, 4), _x(2, 5, 16)),
     ValueError, r"memory must have shape \(batch, src_len, d_model=32\), got \(2, 5, 16\)"),
    ("model_sequence_longer_than_max_len", lambda: _tiny(max_len=8)(_ids(1, 9), _ids(1, 3)),
     ValueError, r"sequence too long: x has seq=9 .*max_len=8"),
    ("model_token_outside_vocabulary", lambda: _tiny()(_ids(1, 4), torch.tensor([[1, 99]])),
     ValueError, r"tokens must hold ids in \[0, vocab_size=16\), got ids in \[1, 99\]"),
    ("decoder_only_float_tokens",
     lambda: DecoderOnlyTransformer(TransformerConfig.tiny())(torch.rand(1, 4)),
     TypeError, r"tokens must hold integer ids .*got dtype torch.float32"),
    ("model_src_mask_wrong_shape",
     lambda: _tiny()(_ids(2, 5), _ids(2, 3), src_mask=torch.ones(2, 1, 1, 4, dtype=torch.bool)),
     ValueError, r"mask must be broadcastable to \(batch, heads, q_len, k_len\) = "
                 r"\(2, 4, 5, 5\), got shape \(2, 1, 1, 4\)"),
    # --- mask builders ---
    ("causal_mask_empty", lambda: causal_mask(0),
     ValueError, r"causal_mask needs 1 <= q_len <= k_len, got q_len=0, k_len=0"),
    ("causal_mask_fewer_keys_than_queries", lambda: causal_mask(4, 3),
     ValueError, r"causal_mask needs 1 <= q_len <= k_len, got q_len=4, k_len=3"),
    ("padding_mask_wrong_rank", lambda: padding_mask(torch.tensor([1, 2, 0]), 0),
     ValueError, r"tokens must have shape \(batch, seq\), got \(3,\)"),
    ("padding_mask_3d", lambda: padding_mask(torch.ones(2, 3, 4, dtype=torch.long), 0),
     ValueError, r"tokens must have shape \(batch, seq\), got \(2, 3, 4\)"),
    ("decoder_mask_wrong_rank", lambda: decoder_mask(torch.tensor([1, 2]), 0),
     ValueError, r"tokens must have shape \(batch, seq\), got \(2,\)"),
    ("decoder_mask_negative_cache_len", lambda: decoder_mask(_ids(1, 2), 0, cache_len=-1),
     ValueError, r"cache_len must be None or >= 0, got -1"),
    ("to_torch_masks_not_bool", lambda: to_torch_masks(torch.ones(2, 1, 1, 5)),
     TypeError, r"mask must be a boolean tensor \(True = may attend\), got torch.float32"),
    ("to_torch_masks_not_4d", lambda: to_torch_masks(torch.ones(5, 5, dtype=torch.bool)),
     ValueError, r"mask must have 4 dims \(batch, heads, q_len, k_len\), got shape \(5, 5\)"),
]


@pytest.mark.parametrize(("make_mistake", "error", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error_with_the_expected_shape_or_range(make_mistake, error,
                                                                         message):
    with pytest.raises(error, match=message):
        make_mistake()


def test_every_case_has_its_own_name():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 20


def test_valid_input_next_to_each_check_is_accepted():
    """The checks are not over-eager: the nearest valid inputs pass."""
    x = _x(2, 5, D)
    _mha(x, x, x, torch.ones(2, 1, 1, 5, dtype=torch.bool))
    _mha(x, x, x, torch.ones(5, 5, dtype=torch.bool))  # a 2-D mask broadcasts
    _mha(x, x, x, torch.ones(H, 5, 5, dtype=torch.bool))  # a 3-D mask is (heads, q, k)
    _mha(x, _x(2, 7, D), _x(2, 7, D), causal_mask(5, 7))
    _sdpa(mask=torch.ones(6, dtype=torch.bool)[None])
    TokenEmbedding(16, 8)(torch.tensor([[0, 15]], dtype=torch.int32))
    SinusoidalPositionalEncoding(8, max_len=5)(_x(1, 2, 8), offset=3)
    assert _tiny(max_len=8)(_ids(1, 8), _ids(1, 8)).shape == (1, 8, 16)
    TransformerConfig(n_kv_heads=8, rope_base=2, norm="rmsnorm", activation="swiglu")
    TransformerConfig(n_kv_heads=1, d_model=12, n_heads=6, positional="rope")  # d_head = 2
    RotaryEmbedding(8, max_len=7)(_x(1, 2, 4, 8), offset=3)  # positions 3..6 fit
    assert _lm(positional="rope", max_len=4)(_ids(1, 4)).shape == (1, 4, 16)

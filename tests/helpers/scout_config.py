"""Llama 4 Scout 17B-16E-Instruct's real config.json values (the fields the estimate reads).

Sources (checked 2025): the text_config numbers as quoted from meta-llama/Llama-4-Scout-17B-16E's
config.json in a vLLM bug report ("Llama4 always go OOM when using LLama4ForCausalLM") and in
transformers' own `Llama4TextConfig` defaults (configuration_llama4.py, documented against
meta-llama/Llama-4-Scout-17B-16E); the vision_config block as published with Scout/Maverick and
reproduced in NVIDIA/TensorRT-LLM's Llama 4 unit test (`LLAMA_4_MAVERICK_TWO_LAYER_CONFIG`, the
same vision tower: hidden 1408, 34 layers, patch 14, image 336, projector 4096).
"""

from __future__ import annotations

SCOUT_CONFIG: dict = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "boi_token_index": 200080,
    "eoi_token_index": 200081,
    "image_token_index": 200092,
    "model_type": "llama4",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "text_config": {
        "attention_bias": False,
        "attention_chunk_size": 8192,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 5120,
        "interleave_moe_layer_step": 1,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "max_position_embeddings": 10485760,
        "model_type": "llama4_text",
        "no_rope_layers": [1, 1, 1, 0] * 12,
        "num_attention_heads": 40,
        "num_experts_per_tok": 1,
        "num_hidden_layers": 48,
        "num_key_value_heads": 8,
        "num_local_experts": 16,
        "rms_norm_eps": 1e-05,
        "use_qk_norm": True,
        "vocab_size": 202048,
    },
    "vision_config": {
        "hidden_act": "gelu",
        "hidden_size": 1408,
        "image_size": 336,
        "intermediate_size": 5632,
        "model_type": "llama4_vision_model",
        "multi_modal_projector_bias": False,
        "norm_eps": 1e-05,
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 34,
        "patch_size": 14,
        "pixel_shuffle_ratio": 0.5,
        "projector_input_dim": 4096,
        "projector_output_dim": 4096,
        "vision_output_dim": 4096,
    },
}

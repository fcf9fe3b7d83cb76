"""Model backends: the one narrow interface the runner and strategies decode and count tokens through.

`base.Backend` is the interface; `transformers.TransformersBackend` (the default: local weights,
batched greedy decoding, LoRA adapters) and `openai.OpenAIBackend` (any OpenAI-compatible
`/v1/chat/completions` endpoint) and `vllm.VLLMBackend` (vLLM's offline engine on GPUs, imported
only when a model names it) implement it.
"""

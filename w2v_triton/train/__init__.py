"""Training from scratch: synthetic corpus, manifest data, bucketed batching, generic trainer.

Modules: text (sentence pool), augment, corpus (espeak-ng -> FLAC + manifests), data (dataset,
BucketBatchSampler, collate), trainer (Trainer, TrainConfig, plot_log), evaluate (greedy WER/CER),
model (reference/tiny configs, export), synthetic (tone 'speech' for tests).
"""

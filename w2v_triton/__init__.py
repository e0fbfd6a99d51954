"""w2v_triton: make wav2vec2 CTC speech recognition small and fast, and serve it on Triton."""

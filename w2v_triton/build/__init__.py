"""Build a servable repository: checkpoints, ONNX export, variants, LM, rendering."""

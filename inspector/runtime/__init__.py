"""Running models: runnable ONNX/TorchScript wrappers, trainable models, evaluation data, and
the measures of agreement between a model's outputs and the original's.

Above io (it reads model files through io's readers) and below tasks. Importing this package is
cheap: torch and onnxruntime load only when a model is opened to run.
"""

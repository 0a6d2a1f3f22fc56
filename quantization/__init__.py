"""Quantization schemes (fp16, dynamic-range, full int8, QAT) per format.

Tracked by the compression issue; the fp16 TFLite and Core ML variants are produced by the
converters today (``converters.onnx2tflite``, ``converters.torch2coreml``).
"""

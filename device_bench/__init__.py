"""device_bench: run EdgeDerm artifacts on a device with numpy plus one runtime.

No torch, no tensorflow, no edgederm import: a phone, Jetson, Raspberry Pi or Mac needs only
numpy and the runtime of the artifact (LiteRT interpreter or tflite-runtime, ONNX Runtime,
coremltools on macOS). ``device_bench.runners.open_runner(path, format)`` gives a callable
that maps a float32 batch in the artifact's layout to its outputs.
"""

__version__ = "0.1.0"

"""Export of trained models for deployment: ONNX with TAO's tensor names, labels file, INT8, runners.

Submodules import onnx/torch/onnxruntime inside their functions, so importing this package is light.
"""

"""What training and serving share: the manifest (the contract), the codec (encode inputs, decode outputs)
and the Predictor (an onnxruntime session behind the codec). Imports neither Flask nor torch."""

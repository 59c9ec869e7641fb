"""The Open Inference Protocol over gRPC (inference.GRPCInferenceService, Triton's grpc_service.proto, which
KServe's grpc_predict_v2.proto is a wire-compatible subset of): generated stubs, the proto <-> numpy translation,
the servicer on the same core as the REST v2 path, and the server each gunicorn worker runs beside HTTP."""

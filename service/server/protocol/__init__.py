"""The protocols, free of any transport: request checks and answers of the native API and of the Open Inference
Protocol (v2), Triton's statistics, the errors they raise, the API key check. Both http/ and grpc/ call here."""

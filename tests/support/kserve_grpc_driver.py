"""Drive toyseq's gRPC service with KServe's own Python SDK gRPC client (kserve.InferenceGRPCClient), in the
separate venv that holds kserve (see kserve_driver.py). Standard library + kserve only.

    .venv-kserve/bin/python tests/support/kserve_grpc_driver.py < jobs.json

stdin: a list of jobs, each {"target": "host:port", "model": ..., "metadata": [[key, value], ...],
      "requests": [{"rows": [[...]], "datatype": "INT64", "binary": bool, "parameters": {...}, "id": "..."}]}
prints a list of results, one per job, each {"live": bool, "ready": bool, "model_ready": bool or
         {"code": ..., "details": ...}, "answers": [{"id": ..., "model_name": ..., "model_version": ...,
         "outputs": {name: {"shape": [...], "datatype": ..., "data": [...]}}} or {"code": ..., "details": ...}]}
"""

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32}


def error(err: grpc.aio.AioRpcError) -> dict:
    return {"code": err.code().name, "details": err.details()}


async def main(job: dict) -> dict:
    # retries=0: an UNAVAILABLE answer is reported as it came, not retried
    client = InferenceGRPCClient(job["target"], timeout=30, retries=0)
    model, metadata = job["model"], [tuple(pair) for pair in job.get("metadata") or []]
    try:
        try:
            model_ready = await client.is_model_ready(model)
        except grpc.aio.AioRpcError as err:
            model_ready = error(err)
        result = {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": model_ready,
            "answers": [],
        }
        for item in job["requests"]:
            rows = np.array(item["rows"], dtype=NUMPY[item["datatype"]])
            tensor = InferInput(name="input", shape=list(rows.shape), datatype=item["datatype"])
            tensor.set_data_from_numpy(rows, binary_data=item["binary"])
            request = InferRequest(
                model_name=model, infer_inputs=[tensor], request_id=item.get("id"), parameters=item.get("parameters")
            )
            try:
                response = await client.infer(request, headers=metadata)
            except grpc.aio.AioRpcError as err:
                result["answers"].append(error(err))
                continue
            outputs = {
                o.name: {"shape": list(o.shape), "datatype": o.datatype, "data": o.as_numpy().tolist()}
                for o in response.outputs
            }
            result["answers"].append(
                {
                    "id": response.id,
                    "model_name": response.model_name,
                    "model_version": response.model_version,
                    "outputs": outputs,
                }
            )
        return result
    finally:
        await client.close()


async def run_all(jobs: list) -> list:
    return [await main(job) for job in jobs]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_all(json.load(sys.stdin)))))

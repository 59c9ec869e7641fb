"""Drive a v2 server with KServe's own Python SDK REST client (kserve.InferenceRESTClient), in the separate
venv that holds kserve (its pins conflict with the project's: see .ci/run). Standard library + kserve only.

    .venv-kserve/bin/python tests/support/kserve_driver.py < jobs.json

stdin: a list of jobs, each {"url": ..., "model": ..., "headers": {...}, "requests": [{"rows": [[...]], "datatype": "INT64",
      "binary": bool, "parameters": {...}, "id": "..."}]}
prints a list of results, one per job, each {"live": bool, "ready": bool, "model_ready": bool,
         "answers": [{"id": ..., "model_name": ..., "outputs": {name: {"shape": [...], "datatype": ..., "data": [...]}}}]}
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32}


async def main(job: dict) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    url, model, headers = job["url"], job["model"], job.get("headers") or {}
    try:
        result = {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "answers": [],
        }
        for item in job["requests"]:
            rows = np.array(item["rows"], dtype=NUMPY[item["datatype"]])
            tensor = InferInput(name="input", shape=list(rows.shape), datatype=item["datatype"])
            tensor.set_data_from_numpy(rows, binary_data=item["binary"])
            request = InferRequest(
                model_name=model, infer_inputs=[tensor], request_id=item.get("id"), parameters=item.get("parameters")
            )
            response = await client.infer(url, request, model_name=model, headers=dict(headers))
            outputs = {
                o.name: {"shape": list(o.shape), "datatype": o.datatype, "data": o.as_numpy().tolist()}
                for o in response.outputs
            }
            result["answers"].append({"id": response.id, "model_name": response.model_name, "outputs": outputs})
        return result
    finally:
        await client.close()


async def run_all(jobs: list) -> list:
    return [await main(job) for job in jobs]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_all(json.load(sys.stdin)))))

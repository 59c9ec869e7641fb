"""Drive toyseq with KServe's own REST client at its defaults (kserve.InferenceRESTClient(): KServe's V1
protocol), in the separate venv that holds kserve (see .ci/run). Standard library + kserve only.

    .venv-kserve/bin/python tests/support/kserve_v1_driver.py < jobs.json

stdin: {"url": ..., "headers": {...}, "jobs": [{"model": ..., "body": {...}}]}
prints {"ready": {model: bool, or the status it raised for}, "answers": [dict, ...], "errors": [{"model", "status", "body"}]}
"""

import asyncio
import json
import sys

import httpx
from kserve import InferenceRESTClient


async def main(spec: dict) -> dict:
    client = InferenceRESTClient()  # the defaults: protocol v1, KServe's own retries and timeout
    url, headers = spec["url"], spec.get("headers") or {}
    result = {"ready": {}, "answers": [], "errors": []}
    try:
        for job in spec["jobs"]:
            model = job["model"]
            try:
                result["ready"][model] = await client.is_model_ready(url, model, headers=headers)
            except httpx.HTTPStatusError as err:  # 404: KServe's client raises for any status but 503
                result["ready"][model] = err.response.status_code
            try:
                result["answers"].append(await client.infer(url, job["body"], model_name=model, headers=headers))
            except httpx.HTTPStatusError as err:
                result["answers"].append(None)
                result["errors"].append(
                    {"model": model, "status": err.response.status_code, "body": err.response.json()}
                )
    finally:
        await client.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))

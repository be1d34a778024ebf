"""Drive a server's /v2 endpoints with KServe's own REST client; run by test_v2_clients.py under .tools/kserve-client.

KServe's client pins pandas<3, so it lives in its own virtualenv and this script runs there as a subprocess:
`python kserve_client.py URL MODEL REQUEST_JSON`, where REQUEST_JSON is a list of {name, datatype, data}. It prints
one JSON object: the health answers, the infer answer's id and outputs, and the error of a request whose first
input has the wrong datatype.
"""

import asyncio
import json
import sys
from typing import Any

import httpx
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(url: str, model: str, tensors: list[dict[str, Any]]) -> dict[str, Any]:
    """Ask health, score `tensors`, and send one wrong datatype; return what the client got."""
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    try:
        report = {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
        }
        inputs = [InferInput(t["name"], [len(t["data"])], t["datatype"], t["data"]) for t in tensors]
        result = await client.infer(url, InferRequest(model, inputs, request_id="kserve-1"), model_name=model)
        report["id"] = result.id
        report["outputs"] = {output.name: output.data for output in result.outputs}
        wrong = [InferInput(tensors[0]["name"], [1], "BOOL", [True]), *inputs[1:]]
        try:
            await client.infer(url, InferRequest(model, wrong), model_name=model)
            report["wrong_datatype"] = "accepted"
        except httpx.HTTPStatusError as error:
            report["wrong_datatype"] = str(error)
        return report
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))))

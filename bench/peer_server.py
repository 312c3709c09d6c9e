"""The peer bench_serve.py measures `critic serve` against: the 25 lines a user would write
to put a bundle behind HTTP (Starlette + uvicorn, one process, one Runtime).

    python bench/peer_server.py BUNDLE PORT
"""

import asyncio
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import critic

rt = critic.Runtime.load(sys.argv[1], threads=1)


async def predict(request: Request) -> JSONResponse:
    texts = (await request.json())["texts"]
    p = await asyncio.to_thread(rt.predict, texts)
    return JSONResponse({"probabilities": p.tolist(), "labels": rt.to_labels(p).tolist()})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/healthz", healthz)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")

"""The cold-start baseline: a bare FastAPI app behind Mangum, as a Lambda handler module."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="auto")

"""The baseline every benchmark is compared with: a bare FastAPI hello endpoint."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}

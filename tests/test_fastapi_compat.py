"""server.fastapi_compat: routes are built without importing pydantic.v1, and a pydantic.v1
model is still refused as FastAPI refuses it. In a fresh interpreter each: whether
pydantic.v1 was imported is the point, and other tests may have imported it."""

import subprocess
import sys

NO_V1_IMPORT = r"""
import sys
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from plexichat_desktop.server import fastapi_compat

fastapi_compat.install()
fastapi_compat.install()  # idempotent: wrapped once
from fastapi._compat import shared
assert shared.is_pydantic_v1_model_class.__wrapped__.__module__ == shared.__name__

class Body(BaseModel):
    name: str

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None, body: Body | None = None) -> Body:
    return Body(name=q or "")

assert jsonable_encoder({"a": Body(name="x")}) == {"a": {"name": "x"}}
# An object no encoder knows goes through the instance check, then dict().
assert jsonable_encoder(type("Odd", (), {"__iter__": lambda self: iter([])})()) == {}
print("pydantic.v1" in sys.modules)
"""

V1_STILL_REFUSED = r"""
import warnings
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import PydanticV1NotSupportedError
from plexichat_desktop.server import fastapi_compat

fastapi_compat.install()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pydantic import v1

class Old(v1.BaseModel):
    name: str

app = FastAPI()
refused = []
try:
    @app.post("/old")
    async def old(body: Old) -> None:
        return None
except PydanticV1NotSupportedError:
    refused.append("route")
try:
    jsonable_encoder(Old(name="x"))
except PydanticV1NotSupportedError:
    refused.append("encoder")
print(refused)
"""


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_routes_are_built_without_importing_pydantic_v1():
    assert run(NO_V1_IMPORT) == "False"


def test_a_pydantic_v1_model_is_still_refused_once_pydantic_v1_is_imported():
    assert run(V1_STILL_REFUSED) == "['route', 'encoder']"

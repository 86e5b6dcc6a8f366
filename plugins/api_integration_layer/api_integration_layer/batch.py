"""Running many calls with bounded concurrency and a result per item."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from api_integration_layer.errors import ApiHTTPError

T = TypeVar("T")


@dataclass
class BatchItem(Generic[T]):
    """The outcome of one call of a batch."""

    index: int
    ok: bool
    value: T | None = None
    error: Exception | None = None

    @property
    def status(self) -> int | None:
        """The HTTP status of a failed call, when the server answered."""
        return self.error.status if isinstance(self.error, ApiHTTPError) else None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "ok": self.ok, "status": self.status,
                "error": None if self.error is None else str(self.error)}


@dataclass
class BatchResult(Generic[T]):
    """Every item's outcome, in the order the calls were given."""

    items: list[BatchItem[T]] = field(default_factory=list)

    def __iter__(self) -> Iterator[BatchItem[T]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def succeeded(self) -> list[BatchItem[T]]:
        return [i for i in self.items if i.ok]

    @property
    def failed(self) -> list[BatchItem[T]]:
        return [i for i in self.items if not i.ok]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)

    def values(self) -> list[T | None]:
        """The values in order; None where the call failed."""
        return [i.value for i in self.items]


async def run_batch(calls: Iterable[Callable[[], Awaitable[T]]], concurrency: int
                    ) -> BatchResult[T]:
    """Run every call, at most ``concurrency`` at a time; one failing does not stop the
    others. Only ``Exception``s are caught per item: cancelling the batch cancels all."""
    pending = list(enumerate(calls))
    result: BatchResult[T] = BatchResult([BatchItem(i, False) for i in range(len(pending))])
    queue = iter(pending)

    # A fixed pool of workers rather than a task per call: a batch of 10,000 calls holds
    # ``concurrency`` tasks, not 10,000.
    async def worker() -> None:
        for index, call in queue:
            try:
                value = await call()
            except Exception as exc:
                result.items[index] = BatchItem(index, False, error=exc)
            else:
                result.items[index] = BatchItem(index, True, value=value)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(max(1, concurrency), len(pending))):
            group.create_task(worker())
    return result

"""The gRPC servicers: thin methods from proto to a domain call and back. No ``try``, no logic: errors are
raised as ``TuneserveError`` and mapped to statuses by ``interceptors.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeAlias

import grpc

from tuneserve.server import convert
from tuneserve.server.catalog import Catalog
from tuneserve.server.dataplane import DataPlane
from tuneserve.server.errors import TrainingUnavailable
from tuneserve.server.streams import ordered
from tuneserve.server.training import Training
from tuneserve.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(
        self, dataplane: DataPlane, max_stream_in_flight: int, draining: asyncio.Event | None = None
    ) -> None:
        """``draining``: set when the server drains; open streams then end (see ``streams.py``)."""
        self.dataplane = dataplane
        self.max_stream_in_flight = max_stream_in_flight
        self.draining = draining

    async def Classify(
        self, request: inference_pb2.ClassifyRequest, context: Context
    ) -> inference_pb2.ClassifyResponse:
        out = await self.dataplane.classify(
            request.model, request.version, request.texts, request.top_k, timeout=context.time_remaining()
        )
        return convert.classify_response(out)

    async def ExtractEntities(
        self, request: inference_pb2.ExtractEntitiesRequest, context: Context
    ) -> inference_pb2.ExtractEntitiesResponse:
        out = await self.dataplane.extract_entities(
            request.model,
            request.version,
            request.texts,
            convert.aggregation_name(request.aggregation),
            request.min_score,
            timeout=context.time_remaining(),
        )
        return convert.extract_response(out)

    async def ClassifyStream(
        self, request_iterator: AsyncIterable[inference_pb2.ClassifyRequest], context: Context
    ) -> AsyncIterator[inference_pb2.ClassifyResponse]:
        async for response in ordered(
            request_iterator, lambda r: self.Classify(r, context), self.max_stream_in_flight, self.draining
        ):
            yield response

    async def ExtractEntitiesStream(
        self, request_iterator: AsyncIterable[inference_pb2.ExtractEntitiesRequest], context: Context
    ) -> AsyncIterator[inference_pb2.ExtractEntitiesResponse]:
        async for response in ordered(
            request_iterator,
            lambda r: self.ExtractEntities(r, context),
            self.max_stream_in_flight,
            self.draining,
        ):
            yield response


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def ListModels(
        self, request: model_pb2.ListModelsRequest, context: Context
    ) -> model_pb2.ListModelsResponse:
        models, token = await self.catalog.list(request.page_size, request.page_token)
        return model_pb2.ListModelsResponse(models=[convert.model(m) for m in models], next_page_token=token)

    async def GetModel(
        self, request: model_pb2.GetModelRequest, context: Context
    ) -> model_pb2.GetModelResponse:
        return model_pb2.GetModelResponse(model=convert.model(await self.catalog.get(request.name)))

    async def SetServingVersion(
        self, request: model_pb2.SetServingVersionRequest, context: Context
    ) -> model_pb2.SetServingVersionResponse:
        info = await self.catalog.set_serving(request.name, request.version)
        return model_pb2.SetServingVersionResponse(model=convert.model(info))

    async def DeleteModelVersion(
        self, request: model_pb2.DeleteModelVersionRequest, context: Context
    ) -> model_pb2.DeleteModelVersionResponse:
        await self.catalog.delete(request.name, request.version)
        return model_pb2.DeleteModelVersionResponse()


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(self, training: Training) -> None:
        self.training = training

    async def Train(self, request: training_pb2.TrainRequest, context: Context) -> training_pb2.TrainResponse:
        return training_pb2.TrainResponse(job=convert.training_job(await self.training.train(request)))

    async def GetTrainingJob(
        self, request: training_pb2.GetTrainingJobRequest, context: Context
    ) -> training_pb2.GetTrainingJobResponse:
        job = await self.training.runner.get(request.job_id)
        return training_pb2.GetTrainingJobResponse(job=convert.training_job(job))

    async def ListTrainingJobs(
        self, request: training_pb2.ListTrainingJobsRequest, context: Context
    ) -> training_pb2.ListTrainingJobsResponse:
        jobs, token = await self.training.runner.list(
            request.model,
            convert.JOB_STATE_NAMES.get(request.state, ""),
            request.page_size,
            request.page_token,
        )
        return training_pb2.ListTrainingJobsResponse(
            jobs=[convert.training_job(j) for j in jobs], next_page_token=token
        )

    async def CancelTrainingJob(
        self, request: training_pb2.CancelTrainingJobRequest, context: Context
    ) -> training_pb2.CancelTrainingJobResponse:
        job = await self.training.runner.cancel(request.job_id)
        return training_pb2.CancelTrainingJobResponse(job=convert.training_job(job))

    async def WatchTrainingJob(
        self, request: training_pb2.WatchTrainingJobRequest, context: Context
    ) -> AsyncIterator[training_pb2.WatchTrainingJobResponse]:
        async for event in self.training.runner.watch(request.job_id):
            yield convert.training_event(event)


class DisabledTrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    """Every RPC answers FAILED_PRECONDITION with the reason training is off on this server."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def _refuse(self, request: Any, context: Context) -> Any:
        raise TrainingUnavailable(self.reason)

    Train = GetTrainingJob = ListTrainingJobs = CancelTrainingJob = _refuse

    async def WatchTrainingJob(self, request: Any, context: Context) -> AsyncIterator[Any]:
        raise TrainingUnavailable(self.reason)
        yield  # pragma: no cover - makes this an async generator

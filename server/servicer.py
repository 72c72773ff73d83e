"""The gRPC servicers: thin methods from proto to a domain call and back. No ``try``, no logic: errors are
raised as ``TuneserveError`` and mapped to statuses by ``interceptors.py``."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeAlias

import grpc

from tuneserve.server import convert
from tuneserve.server.catalog import Catalog
from tuneserve.server.dataplane import DataPlane
from tuneserve.server.errors import Unimplemented
from tuneserve.server.streams import ordered
from tuneserve.v1 import inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc, training_pb2_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, max_stream_in_flight: int) -> None:
        self.dataplane = dataplane
        self.max_stream_in_flight = max_stream_in_flight

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
            request_iterator, lambda r: self.Classify(r, context), self.max_stream_in_flight
        ):
            yield response

    async def ExtractEntitiesStream(
        self, request_iterator: AsyncIterable[inference_pb2.ExtractEntitiesRequest], context: Context
    ) -> AsyncIterator[inference_pb2.ExtractEntitiesResponse]:
        async for response in ordered(
            request_iterator, lambda r: self.ExtractEntities(r, context), self.max_stream_in_flight
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

    async def SetServingVersion(self, request: Any, context: Context) -> Any:
        raise Unimplemented(
            "SetServingVersion is not implemented by this server yet: promote a version with the "
            "model store (ModelStore.set_serving_version) and restart the server"
        )

    async def DeleteModelVersion(self, request: Any, context: Context) -> Any:
        raise Unimplemented(
            "DeleteModelVersion is not implemented by this server yet: delete versions with the "
            "model store (ModelStore.delete_version)"
        )


def _training_unimplemented(rpc: str) -> Any:
    async def method(self: Any, request: Any, context: Context) -> Any:
        raise Unimplemented(
            f"TrainingService.{rpc} is not implemented by this server yet: train with "
            "`tuneserve train` and publish with `tuneserve export`"
        )

    method.__name__ = rpc
    return method


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the training issue lands."""

    Train = _training_unimplemented("Train")
    GetTrainingJob = _training_unimplemented("GetTrainingJob")
    ListTrainingJobs = _training_unimplemented("ListTrainingJobs")
    CancelTrainingJob = _training_unimplemented("CancelTrainingJob")
    WatchTrainingJob = _training_unimplemented("WatchTrainingJob")

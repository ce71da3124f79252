"""The audio routes of the offline app: transcription (`audio`), speech and voices (`speech`).

`routes(state, plan_of, int_query)` gives the app its five routes; `plan_of(request)` is the
request's fault plan and `int_query` reads an integer query parameter (both the app's own).
The work (decoding, measuring, encoding) runs in the thread pool; answers are paced by the
fault plan like chat's.
"""

from __future__ import annotations

import base64
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..money import tokens
from . import audio, files, limits, speech
from .sse import EventStream, PacedResponse, answer_seconds


def routes(state, plan_of, int_query) -> list[Route]:
    """The transcription, speech and voice routes over the server's `state`."""

    async def transcribe(request: Request) -> Response:
        plan, _ = plan_of(request)
        with files.spooled() as body:
            # Spooled to disk as it arrives: a long recording never sits in memory twice.
            await limits.spool_body(request, limits.MAX_UPLOAD_BYTES, body)
            content_type = request.headers.get("content-type", "")

            def work():
                with files.parse_multipart(body, content_type, files.spooled) as form:
                    asked, _ = audio.request(form, state.files)
                    answer = asked.answer(state.sidecars)
                if asked.stream:
                    return EventStream(list(audio.frames(answer)), plan)
                return PacedResponse(json.dumps(answer, ensure_ascii=False).encode(),
                                     answer_seconds(plan, tokens.count_text(answer["text"])))

            return await run_in_threadpool(work)

    async def speak(request: Request) -> Response:
        plan, _ = plan_of(request)
        raw = await limits.read_body(request, limits.MAX_JSON_BYTES)

        def work():
            asked = speech.request(limits.decode_json(raw))
            if asked.stream:
                return EventStream(list(speech.frames(asked)), plan)
            body = {"audio_data": base64.b64encode(asked.audio()).decode("ascii")}
            return PacedResponse(json.dumps(body).encode(), answer_seconds(plan, 1))

        return await run_in_threadpool(work)

    async def list_voices(request: Request) -> Response:
        return JSONResponse(speech.voices_page(int_query(request, "limit", 10), int_query(request, "offset", 0),
                                               request.query_params.get("type", "all")))

    async def get_voice(request: Request) -> Response:
        return JSONResponse(speech.voice(request.path_params["voice_id"]).card())

    async def voice_sample(request: Request) -> Response:
        data = await run_in_threadpool(speech.sample, request.path_params["voice_id"])
        return Response(data, media_type="audio/wav")

    return [
        Route("/v1/audio/transcriptions", transcribe, methods=["POST"]),
        Route("/v1/audio/speech", speak, methods=["POST"]),
        Route("/v1/audio/voices", list_voices, methods=["GET"]),
        Route("/v1/audio/voices/{voice_id}", get_voice, methods=["GET"]),
        Route("/v1/audio/voices/{voice_id}/sample", voice_sample, methods=["GET"]),
    ]

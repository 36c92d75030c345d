"""POST /v1/moderations in OpenAI's schema, answered by the content filter's own analyzers.

The classifier's categories map onto OpenAI's names: `hate`, `sexual`, `violence`, `self-harm`
are flagged at medium severity and above (Azure's default policy); `hate/threatening` and
`self-harm/instructions` at high severity, `self-harm/intent` at medium. OpenAI categories this
server has no classifier for (harassment, illicit, sexual/minors, violence/graphic) are left out
rather than answered with a guess. `category_severities` adds Azure's severities.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictStr

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import SettingsDep
from ceruleum.api.errors import InvalidRequestError, ServiceUnavailableError
from ceruleum.api.protocol import WireModel
from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.gateway.errors import PermissionDeniedError
from ceruleum.safety.analyzers import Segment
from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import DEFAULT_POLICY
from ceruleum.safety.verdict import Verdict

router = APIRouter()

MODEL = "ceruleum-moderation-1"
MAX_INPUTS = 256
# All inputs of a request together: the classifier reads 100,000 characters in about 8 s on
# two cores (its windows overlap), and one caller should not buy more CPU than that at once.
MAX_CHARACTERS = 100_000
# OpenAI category -> (our category, the severity from which it is flagged).
_MAPPING: dict[str, tuple[str, Severity]] = {
    "hate": ("hate", Severity.MEDIUM),
    "hate/threatening": ("hate", Severity.HIGH),
    "sexual": ("sexual", Severity.MEDIUM),
    "violence": ("violence", Severity.MEDIUM),
    "self-harm": ("self_harm", Severity.MEDIUM),
    "self-harm/intent": ("self_harm", Severity.MEDIUM),
    "self-harm/instructions": ("self_harm", Severity.HIGH),
}


class TextInput(WireModel):
    type: StrictStr
    text: StrictStr | None = None


class ModerationRequest(WireModel):
    input: StrictStr | Annotated[list[StrictStr | TextInput], Field(min_length=1)]
    model: StrictStr | None = None


def _texts(body: ModerationRequest) -> list[str]:
    texts = _input_texts(body)
    characters = sum(len(text) for text in texts)
    if characters > MAX_CHARACTERS:
        raise InvalidRequestError(
            f"'input' holds {characters} characters; at most {MAX_CHARACTERS} can be moderated "
            "in one request. Split it into several requests.",
            param="input",
        )
    return texts


def _input_texts(body: ModerationRequest) -> list[str]:
    if isinstance(body.input, str):
        return [body.input]
    if len(body.input) > MAX_INPUTS:
        raise InvalidRequestError(
            f"'input' has {len(body.input)} items; at most {MAX_INPUTS} are allowed.",
            param="input",
        )
    texts = []
    for index, item in enumerate(body.input):
        if isinstance(item, str):
            texts.append(item)
        elif item.type == "text" and item.text is not None:
            texts.append(item.text)
        else:
            raise InvalidRequestError(
                f"input[{index}] has type '{item.type}'; only text can be moderated here.",
                param=f"input[{index}].type",
            )
    return texts


def _result(verdict: Verdict) -> dict[str, Any]:
    severities = verdict.findings.severities
    scores = verdict.findings.scores
    categories = {}
    category_scores = {}
    for name, (category, level) in _MAPPING.items():
        categories[name] = severities.get(category, Severity.SAFE) >= level
        category_scores[name] = round(scores.get(f"{category}>={level.wire}", 0.0), 6)
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": category_scores,
        "category_applied_input_types": {name: ["text"] for name in _MAPPING},
        "category_severities": {c: severities.get(c, Severity.SAFE).wire for c in CATEGORIES},
    }


@router.post("/moderations", tags=["moderation"])
async def create_moderation(
    request: Request, principal: CurrentPrincipal, settings: SettingsDep
) -> JSONResponse:
    if not principal.can_infer():
        raise PermissionDeniedError(f"This key's role ({principal.role}) may not call inference.")
    data = await read_json_object(request, settings.max_body_bytes)
    body = parse_as(ModerationRequest, data)
    texts = _texts(body)
    content_filter: ContentFilter | None = request.app.state.content_filter
    if content_filter is None:
        raise ServiceUnavailableError(
            "Content filtering is switched off on this server.", code="moderation_unavailable"
        )
    verdicts = await content_filter.check_async(
        [[Segment(text, "user")] for text in texts], source="prompt", rules=DEFAULT_POLICY.prompt
    )
    if any("hate" in v.failed for v in verdicts):
        raise ServiceUnavailableError(
            "The moderation classifier is unavailable; try again later.",
            code="moderation_unavailable",
        )
    return JSONResponse(
        {
            "id": "modr-" + secrets.token_hex(12),
            "model": MODEL,
            "results": [_result(v) for v in verdicts],
        }
    )

"""Content filtering of one inference request: the deployment's policy with its project's
blocklists, the prompt check (a 400 in Azure's shape when filtered) and completion checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ceruleum.api.errors import APIError
from ceruleum.api.generation import ChoiceRun
from ceruleum.deployments import Deployment
from ceruleum.gateway.principal import Principal
from ceruleum.safety.analyzers import Segment
from ceruleum.safety.blocklist import CompiledBlocklist
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import DEFAULT_POLICY, ContentFilterPolicy
from ceruleum.safety.verdict import Verdict

PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering the content management policy. "
    "Please modify your prompt and retry."
)


class ContentFilteredError(APIError):
    """A prompt the policy filters: HTTP 400 `content_filter`, as Azure OpenAI answers it."""

    status_code = 400

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(PROMPT_FILTERED, param="prompt", code="content_filter")
        self.extra = {
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": result,
            }
        }
        self.azure_extra = {"type": None, "status": 400}


@dataclass(slots=True)
class RequestFilter:
    """Filtering for one request; `content_filter` None means filtering is off (development)."""

    content_filter: ContentFilter | None
    policy: ContentFilterPolicy = DEFAULT_POLICY
    blocklists: Sequence[CompiledBlocklist] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.content_filter is not None

    async def check_prompts(self, prompts: Sequence[Sequence[Segment]]) -> list[dict[str, Any]]:
        """`prompt_filter_results` for the reply; raises ContentFilteredError when filtered."""
        if self.content_filter is None:
            return []
        verdicts = await self.content_filter.check_async(
            prompts, source="prompt", rules=self.policy.prompt, blocklists=self.blocklists
        )
        for verdict in verdicts:
            if verdict.filtered:
                raise ContentFilteredError(verdict.annotation())
        return [
            {"prompt_index": index, "content_filter_results": verdict.annotation()}
            for index, verdict in enumerate(verdicts)
        ]

    async def check_prompts_while_generating(
        self, prompts: Sequence[Sequence[Segment]], outputs: ChoiceRun
    ) -> list[dict[str, Any]]:
        """`check_prompts`, with the engine already generating `outputs` (when filtering is on),
        so that the check overlaps the generation instead of preceding it. What the engine
        produces waits in `outputs` until the check has passed; a filtered prompt aborts it."""
        if self.content_filter is None:
            return []
        outputs.start()
        try:
            return await self.check_prompts(prompts)
        except BaseException:
            await outputs.aclose()
            raise

    async def check_completions(self, texts: Sequence[str]) -> list[Verdict] | None:
        """One verdict per text, or None when filtering is off."""
        if self.content_filter is None:
            return None
        return await self.content_filter.check_async(
            [[Segment(text, "assistant")] for text in texts],
            source="completion",
            rules=self.policy.completion,
            blocklists=self.blocklists,
        )


async def request_filter(
    request: Request, principal: Principal, deployment: Deployment | None
) -> RequestFilter:
    state = request.app.state
    content_filter: ContentFilter | None = getattr(state, "content_filter", None)
    if content_filter is None:
        return RequestFilter(None)
    if deployment is None:  # a served model called by id: the server-wide default policy
        return RequestFilter(content_filter, state.default_content_policy)
    policy = deployment.content_filter
    blocklists = (
        await state.blocklist_lookup.get(
            project_id=principal.project_id, names=policy.blocklist_names
        )
        if policy.blocklist_names
        else []
    )
    return RequestFilter(content_filter, policy, blocklists)


async def annotate_choices(
    filtering: RequestFilter,
    choices: list[dict[str, Any]],
    texts: Sequence[str],
    withhold: Callable[[dict[str, Any]], None],
) -> None:
    """Annotate each choice of a whole reply; `withhold` empties a filtered one (only that
    choice when n > 1), which then ends with finish_reason `content_filter`."""
    verdicts = await filtering.check_completions(texts)
    if verdicts is None:
        return
    for choice, verdict in zip(choices, verdicts, strict=True):
        choice["content_filter_results"] = verdict.annotation()
        if verdict.filtered:
            withhold(choice)
            choice["logprobs"] = None
            choice["finish_reason"] = "content_filter"
